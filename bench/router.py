"""Cost of routing a request: ``python -m bench.router``.

Prints microseconds per :meth:`Router.match` for 10, 1,000 and 10,000 prefix routes, with the
match cache off and on, and the 1,000/10 ratio (1.0 means the cost does not grow with routes).
"""

from __future__ import annotations

import random
import time

from dataplane.gateway_config import Route, Service
from dataplane.router import Router

ROUTE_COUNTS = (10, 1_000, 10_000)
HEADERS: list[tuple[bytes, bytes]] = [
    (b"host", b"api.example.com"),
    (b"user-agent", b"curl/8.5.0"),
    (b"accept", b"application/json"),
    (b"accept-encoding", b"gzip, br"),
    (b"authorization", b"Bearer abc.def.ghi"),
    (b"x-request-id", b"6f1f6b8e-1d6a-4d7f-9a39-1b2f0f1b8a11"),
    (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    (b"content-type", b"application/json"),
]
SERVICE = Service(id="svc", name="svc", host="upstream", path="/base")


def make_routes(count: int) -> list[Route]:
    """``count`` prefix routes: ``/team{i}/orders``, every tenth also bound to a host."""
    routes = []
    for i in range(count):
        hosts = ("api.example.com",) if i % 10 == 0 else ()
        routes.append(
            Route(
                id=f"r{i}",
                name=f"r{i}",
                service_id="svc",
                paths=(f"/team{i}/orders",),
                hosts=hosts,
                methods=("GET", "POST") if i % 3 == 0 else (),
            )
        )
    # The fallback every gateway has.
    routes.append(Route(id="root", name="root", service_id="svc", paths=("/",)))
    return routes


def make_paths(count: int, distinct: int) -> list[str]:
    """Request paths spread over the routes (and a few that only the root route takes)."""
    rng = random.Random(7)
    paths = [f"/team{rng.randrange(count)}/orders/{rng.randrange(10**6)}" for _ in range(distinct)]
    paths[::20] = [f"/unknown/{i}" for i in range(len(paths[::20]))]
    return paths


def per_match_us(router: Router, paths: list[str], rounds: int) -> float:
    """Best-of-5 microseconds per match over ``rounds`` passes through ``paths``."""
    match = router.match
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(rounds):
            for path in paths:
                match("GET", "api.example.com", path, HEADERS, "http")
        best = min(best, (time.perf_counter() - started) / (rounds * len(paths)))
    return best * 1e6


def main() -> None:
    """Run the benchmark and print the table."""
    services = {SERVICE.id: SERVICE}
    results: dict[tuple[int, bool], float] = {}
    print(f"{'routes':>8} {'build ms':>9} {'cache off µs':>13} {'cache on µs':>12}")
    for count in ROUTE_COUNTS:
        routes = make_routes(count)
        started = time.perf_counter()
        uncached = Router.build(routes, services, cache_size=0)
        build_ms = (time.perf_counter() - started) * 1e3
        cached = Router.build(routes, services)
        # Off: every request path is new. On: 1,000 hot paths, all fitting in the cache.
        results[count, False] = per_match_us(uncached, make_paths(count, 2_000), rounds=5)
        results[count, True] = per_match_us(cached, make_paths(count, 1_000), rounds=10)
        print(
            f"{count:>8} {build_ms:>9.1f} {results[count, False]:>13.2f}"
            f" {results[count, True]:>12.2f}"
        )
    for cache in (False, True):
        ratio = results[1_000, cache] / results[10, cache]
        ratio_10k = results[10_000, cache] / results[10, cache]
        label = "on " if cache else "off"
        print(f"cache {label}: 1000/10 ratio {ratio:.2f}, 10000/10 ratio {ratio_10k:.2f}")


if __name__ == "__main__":
    main()
