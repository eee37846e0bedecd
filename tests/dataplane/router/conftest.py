"""Fixtures for the router tests: services, a route factory and a router factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dataplane.gateway_config import Route, Service
from dataplane.router import Router

RouteFactory = Callable[..., Route]
RouterFactory = Callable[..., Router]


@pytest.fixture
def services() -> dict[str, Service]:
    """``svc`` proxies to ``/``; ``svc-s`` to ``/s``; ``svc-off`` is disabled."""
    return {
        "svc": Service(id="svc", name="svc", host="upstream"),
        "svc-s": Service(id="svc-s", name="svc-s", host="upstream", path="/s"),
        "svc-off": Service(id="svc-off", name="svc-off", host="upstream", enabled=False),
    }


@pytest.fixture
def make_route() -> RouteFactory:
    """``make_route(name, **fields)``: a route of service ``svc`` unless told otherwise."""

    def make(name: str, **fields: Any) -> Route:
        fields.setdefault("service_id", "svc")
        return Route(id=name, name=name, **fields)

    return make


@pytest.fixture
def make_router(services: dict[str, Service], make_route: RouteFactory) -> RouterFactory:
    """``make_router(*routes, cache_size=0)``; a route may be given as a dict of its fields."""

    def make(*routes: Route | dict[str, Any], cache_size: int = 0) -> Router:
        built = [
            r if isinstance(r, Route) else make_route(r.get("name", f"r{i}"), **_without_name(r))
            for i, r in enumerate(routes)
        ]
        return Router.build(built, services, cache_size=cache_size)

    return make


def _without_name(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k != "name"}
