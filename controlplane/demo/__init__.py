"""The quick start's demo: an upstream service and the gateway config that fronts it."""
