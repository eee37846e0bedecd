"""Property test: the indexed, cached router agrees with a brute-force reading of the rules."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dataplane.gateway_config import Route, Service
from dataplane.router import Router

SERVICES = {
    "svc": Service(id="svc", name="svc", host="upstream"),
    "svc-s": Service(id="svc-s", name="svc-s", host="upstream", path="/s"),
}
ROUTE_PATHS = ["/", "/a", "/a/", "/a/b", "/ab", "/b", r"~/a/\d", "~/(a|b)$", "~/b", "~/a"]
ROUTE_HOSTS = ["x.com", "a.x.com", "*.x.com", "x.*", "x.com:8080", "*.x.com:80", "a.*"]
HEADER_RULES: dict[str, list[list[str]]] = {
    "x-h": [["1"], ["~*^z"], ["1", "2"]],
    "x-k": [["k"]],
}
REQUEST_HOSTS = ["x.com", "X.COM:8080", "a.x.com", "b.a.x.com", "x.org", "a.x.com:80", None, "x"]
REQUEST_HEADERS = [(b"x-h", b"1"), (b"x-h", b"Zed"), (b"x-h", b"2"), (b"x-k", b"K"), (b"x-o", b"")]
Request = tuple[str, str | None, str, list[tuple[bytes, bytes]], str]


@st.composite
def routes(draw: st.DrawFn) -> list[Route]:
    out = []
    for index in range(draw(st.integers(0, 6))):
        fields: dict[str, Any] = {
            "paths": draw(st.lists(st.sampled_from(ROUTE_PATHS), max_size=2)),
            "hosts": draw(st.lists(st.sampled_from(ROUTE_HOSTS), max_size=2)),
            "methods": draw(st.lists(st.sampled_from(["GET", "POST"]), max_size=2, unique=True)),
            "headers": {
                name: draw(st.sampled_from(choices))
                for name, choices in HEADER_RULES.items()
                if draw(st.booleans())
            },
            "regex_priority": draw(st.integers(-1, 2)),
            "strip_path": draw(st.booleans()),
            "preserve_host": draw(st.booleans()),
            "protocols": draw(st.sampled_from([("http", "https"), ("https",)])),
            "service_id": draw(st.sampled_from(["svc", "svc-s", "gone"])),
        }
        if not (fields["paths"] or fields["hosts"] or fields["methods"] or fields["headers"]):
            fields["methods"] = ["GET"]
        out.append(Route(id=f"r{index}", name=f"r{index}", **fields))
    return out


requests = st.tuples(
    st.sampled_from(["GET", "POST", "PUT"]),
    st.sampled_from(REQUEST_HOSTS),
    st.lists(st.sampled_from(["a", "b", "ab", "1"]), max_size=3).map(lambda s: "/" + "/".join(s)),
    st.lists(st.sampled_from(REQUEST_HEADERS), max_size=3),
    st.sampled_from(["http", "https"]),
)


def _host_matches(pattern: str, name: str, port: int) -> bool:
    pattern = pattern.lower()
    if ":" in pattern:
        pattern, _, wanted = pattern.partition(":")
        if int(wanted) != port:
            return False
    regex = re.escape(pattern).replace(r"\*", ".+")
    return re.fullmatch(regex, name) is not None


def _header_matches(rule: tuple[str, ...], values: list[str]) -> bool:
    for value in values:
        for wanted in rule:
            if wanted.startswith("~*"):
                if re.search(wanted[2:], value, re.IGNORECASE):
                    return True
            elif wanted.lower() == value.lower():
                return True
    return False


def reference(
    table: list[Route], request: Request
) -> tuple[str, str | None, str | None, str] | None:
    """Try every route, host and path; the smallest priority tuple wins."""
    method, host, path, headers, scheme = request
    name, _, port_text = (host or "").lower().partition(":")
    port = int(port_text) if port_text else {"http": 80, "https": 443}[scheme]
    best: tuple[tuple[int, ...], Route, str | None, int] | None = None
    for order, route in enumerate(table):
        service = SERVICES.get(route.service_id)
        if service is None or scheme not in route.protocols:
            continue
        if route.methods and method not in route.methods:
            continue
        if not all(
            _header_matches(rule, [v.decode() for k, v in headers if k.decode() == header])
            for header, rule in route.headers.items()
        ):
            continue
        categories = sum(map(bool, (route.methods, route.hosts, route.paths, route.headers)))
        hosts: list[str | None] = list(route.hosts) or [None]
        for p_index, route_path in enumerate(route.paths or [None]):
            end = 0
            if route_path is not None and route_path.startswith("~"):
                found = re.match(route_path[1:], path)
                if found is None:
                    continue
                end = found.end()
            elif route_path is not None:
                if not path.startswith(route_path):
                    continue
                end = len(route_path)
            is_regex = route_path is not None and route_path.startswith("~")
            for h_index, pattern in enumerate(hosts):
                if pattern is not None and not _host_matches(pattern, name, port):
                    continue
                key = (
                    -categories,
                    -(pattern is not None and "*" not in pattern),
                    -len(route.headers),
                    -is_regex,
                    -(route.regex_priority if is_regex else 0),
                    -(0 if is_regex or route_path is None else len(route_path)),
                    order,
                    p_index * len(hosts) + h_index,
                )
                if best is None or key < best[0]:
                    best = (key, route, route_path, end)
    if best is None:
        return None
    _, route, route_path, end = best
    strip = route.strip_path and route_path is not None
    rest = path[end:] if strip else path
    base = SERVICES[route.service_id].path
    upstream = _join_v0(base, path, rest, strip)
    return route.id, route_path, host if route.preserve_host and host else None, upstream


def _join_v0(base: str | None, path: str, rest: str, strip: bool) -> str:
    """The v0 joining, written from Kong's table rather than from the module's code."""
    if base is None or base == "/":
        if not strip:
            return path
        return rest if rest.startswith("/") else "/" + rest
    if not strip:
        return base if path == "/" else base + path
    if not rest:
        return base + "/" if len(path) > 1 and path.endswith("/") else base
    return base + rest if rest.startswith("/") else base + "/" + rest


def actual(router: Router, request: Request) -> tuple[str, str | None, str | None, str] | None:
    found, _ = router.match(*request)
    if found is None:
        return None
    return found.route.id, found.matched_path, found.upstream_host, found.upstream_path


@settings(max_examples=400, deadline=None)
@given(routes(), st.lists(requests, min_size=1, max_size=4))
def test_router_agrees_with_reference(table: list[Route], batch: list[Request]) -> None:
    uncached = Router.build(table, SERVICES, cache_size=0)
    cached = Router.build(table, SERVICES, cache_size=2)
    for request in batch * 2:
        expected = reference(table, request)
        assert actual(uncached, request) == expected
        assert actual(cached, request) == expected
