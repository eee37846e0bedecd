"""The gateway config ``activetrace up`` applies: the demo service and its routes."""

from __future__ import annotations

from typing import Any

__all__ = ["demo_config"]


def demo_config(upstream_url: str) -> dict[str, Any]:
    """A decK-style document fronting the demo upstream at ``upstream_url``."""
    return {
        "_format_version": "1.0",
        "services": [
            {
                "name": "demo",
                "url": upstream_url,
                "connect_timeout": 2000,
                "read_timeout": 10000,
                "routes": [
                    {"name": "demo", "paths": ["/demo"], "strip_path": False},
                    {"name": "orders", "paths": ["/demo/orders"], "strip_path": False},
                ],
            }
        ],
    }
