"""The built-in trace viewer: static pages and the view models they draw."""
