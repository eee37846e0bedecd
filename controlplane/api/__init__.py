"""The HTTP API (``/api/v1``): thin routes over ``controlplane.services``."""
