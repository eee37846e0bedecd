"""Gateway plugins: the runtime (phases, priorities, scoping) and the built-in plugins."""
