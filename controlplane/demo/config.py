"""The gateway config ``activetrace up`` applies: the demo service and its routes."""

from __future__ import annotations

from typing import Any

__all__ = ["demo_config"]


def demo_config(upstream_url: str) -> dict[str, Any]:
    """A decK-style document fronting the demo upstream at ``upstream_url``.

    A few plugins run on the request and response sides so that the quick start's traces show a
    transaction map with real plugin phases.
    """
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
                    {
                        "name": "orders",
                        "paths": ["/demo/orders"],
                        "strip_path": False,
                        "plugins": [
                            {"name": "rate-limiting", "config": {"minute": 6000}},
                            {
                                "name": "request-transformer",
                                "config": {"add": {"headers": ["x-demo-client:quickstart"]}},
                            },
                        ],
                    },
                ],
                "plugins": [
                    {
                        "name": "response-transformer",
                        "config": {"add": {"headers": ["x-served-by:activetrace-demo"]}},
                    }
                ],
            }
        ],
        # Every request gets an ID that is sent upstream and echoed back to the client.
        "plugins": [
            {
                "name": "correlation-id",
                "config": {"header_name": "x-correlation-id", "echo_downstream": True},
            }
        ],
    }
