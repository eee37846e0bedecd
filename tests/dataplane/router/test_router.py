"""The router: every criterion, every priority rule, path and host rewriting, the cache."""

from __future__ import annotations

from typing import Any

import pytest

from dataplane.gateway_config import Route, Service
from dataplane.router import RouteMatch, Router
from dataplane.router.candidate import Upstream
from dataplane.tracing.wire import span_attribute_fields
from tests.dataplane.router.conftest import RouteFactory, RouterFactory

R = dict[str, Any]


def route_name(router: Router, request: R) -> str | None:
    """The name of the route ``request`` goes to (None when nothing matches)."""
    found, _ = router.match(
        request.get("method", "GET"),
        request.get("host", "example.com"),
        request.get("path", "/"),
        request.get("headers", []),
        request.get("scheme", "http"),
    )
    return found.route.name if found is not None else None


CRITERIA: list[tuple[str, list[R], R, str | None]] = [
    # paths: prefix
    ("prefix exact", [{"paths": ["/foo"]}], {"path": "/foo"}, "r0"),
    ("prefix below", [{"paths": ["/foo"]}], {"path": "/foo/bar"}, "r0"),
    ("prefix is a string prefix", [{"paths": ["/foo"]}], {"path": "/foobar"}, "r0"),
    ("prefix too short", [{"paths": ["/foo"]}], {"path": "/fo"}, None),
    ("prefix other", [{"paths": ["/foo"]}], {"path": "/bar/foo"}, None),
    ("prefix root", [{"paths": ["/"]}], {"path": "/anything/at/all"}, "r0"),
    ("any of the paths", [{"paths": ["/a", "/b"]}], {"path": "/b/1"}, "r0"),
    ("prefix is case-sensitive", [{"paths": ["/foo"]}], {"path": "/FOO"}, None),
    ("query ignored", [{"paths": ["/foo"]}], {"path": "/foo?x=/bar"}, "r0"),
    # paths: regex
    ("regex", [{"paths": [r"~/users/\d+$"]}], {"path": "/users/42"}, "r0"),
    ("regex no match", [{"paths": [r"~/users/\d+$"]}], {"path": "/users/ab"}, None),
    ("regex anchored at start", [{"paths": ["~/x"]}], {"path": "/a/x"}, None),
    ("regex not anchored at end", [{"paths": ["~/x"]}], {"path": "/x/y"}, "r0"),
    # path normalisation
    ("percent-encoded unreserved", [{"paths": ["/admin"]}], {"path": "/%61dmin"}, "r0"),
    ("double slash", [{"paths": ["/admin/x"]}], {"path": "//admin//x"}, "r0"),
    ("dot segments", [{"paths": ["/admin"]}], {"path": "/public/../admin"}, "r0"),
    # methods
    ("method", [{"methods": ["GET"]}], {"method": "GET"}, "r0"),
    ("method other", [{"methods": ["GET"]}], {"method": "POST"}, None),
    ("any of the methods", [{"methods": ["GET", "POST"]}], {"method": "POST"}, "r0"),
    ("method lower-case request", [{"methods": ["GET"]}], {"method": "get"}, "r0"),
    # hosts
    ("host", [{"hosts": ["example.com"]}], {"host": "example.com"}, "r0"),
    ("host case", [{"hosts": ["Example.com"]}], {"host": "EXAMPLE.com"}, "r0"),
    ("host other", [{"hosts": ["example.com"]}], {"host": "example.org"}, None),
    ("host any port", [{"hosts": ["example.com"]}], {"host": "example.com:9999"}, "r0"),
    ("host none", [{"hosts": ["example.com"]}], {"host": None}, None),
    ("host port", [{"hosts": ["example.com:8080"]}], {"host": "example.com:8080"}, "r0"),
    ("host other port", [{"hosts": ["example.com:8080"]}], {"host": "example.com:8081"}, None),
    ("host default port", [{"hosts": ["example.com:8080"]}], {"host": "example.com"}, None),
    ("host port 80 implied", [{"hosts": ["example.com:80"]}], {"host": "example.com"}, "r0"),
    (
        "host port 443 implied",
        [{"hosts": ["example.com:443"]}],
        {"host": "example.com", "scheme": "https"},
        "r0",
    ),
    ("host bad port", [{"hosts": ["example.com:80"]}], {"host": "example.com:x"}, None),
    ("any of the hosts", [{"hosts": ["a.com", "b.com"]}], {"host": "b.com"}, "r0"),
    # wildcard hosts
    ("suffix wildcard", [{"hosts": ["*.example.com"]}], {"host": "api.example.com"}, "r0"),
    ("suffix wildcard deep", [{"hosts": ["*.example.com"]}], {"host": "a.b.example.com"}, "r0"),
    ("suffix wildcard bare", [{"hosts": ["*.example.com"]}], {"host": "example.com"}, None),
    ("suffix wildcard empty", [{"hosts": ["*.example.com"]}], {"host": ".example.com"}, None),
    ("suffix wildcard other", [{"hosts": ["*.example.com"]}], {"host": "api.example.org"}, None),
    ("suffix wildcard port", [{"hosts": ["*.example.com"]}], {"host": "a.example.com:81"}, "r0"),
    (
        "suffix wildcard with port",
        [{"hosts": ["*.example.com:8443"]}],
        {"host": "a.example.com:8443"},
        "r0",
    ),
    (
        "suffix wildcard wrong port",
        [{"hosts": ["*.example.com:8443"]}],
        {"host": "a.example.com"},
        None,
    ),
    ("prefix wildcard", [{"hosts": ["example.*"]}], {"host": "example.org"}, "r0"),
    ("prefix wildcard deep", [{"hosts": ["example.*"]}], {"host": "example.co.uk"}, "r0"),
    ("prefix wildcard bare", [{"hosts": ["example.*"]}], {"host": "example"}, None),
    ("prefix wildcard empty", [{"hosts": ["example.*"]}], {"host": "example."}, None),
    ("prefix wildcard inner", [{"hosts": ["example.*"]}], {"host": "www.example.org"}, None),
    # headers
    ("header", [{"headers": {"x-v": ["v1"]}}], {"headers": [(b"x-v", b"v1")]}, "r0"),
    ("header name case", [{"headers": {"X-V": ["v1"]}}], {"headers": [(b"x-v", b"v1")]}, "r0"),
    ("header value case", [{"headers": {"x-v": ["v1"]}}], {"headers": [(b"x-v", b"V1")]}, "r0"),
    ("header any value", [{"headers": {"x-v": ["a", "b"]}}], {"headers": [(b"x-v", b"b")]}, "r0"),
    ("header other value", [{"headers": {"x-v": ["v1"]}}], {"headers": [(b"x-v", b"v2")]}, None),
    ("header missing", [{"headers": {"x-v": ["v1"]}}], {"headers": []}, None),
    (
        "header repeated",
        [{"headers": {"x-v": ["v2"]}}],
        {"headers": [(b"x-v", b"v1"), (b"x-v", b"v2")]},
        "r0",
    ),
    (
        "header regex",
        [{"headers": {"x-v": ["~*^beta-\\d"]}}],
        {"headers": [(b"x-v", b"BETA-1")]},
        "r0",
    ),
    (
        "header regex no match",
        [{"headers": {"x-v": ["~*^beta-\\d"]}}],
        {"headers": [(b"x-v", b"alpha")]},
        None,
    ),
    (
        "all headers needed",
        [{"headers": {"x-a": ["1"], "x-b": ["1"]}}],
        {"headers": [(b"x-a", b"1")]},
        None,
    ),
    # protocols
    ("protocol", [{"paths": ["/"], "protocols": ["https"]}], {"scheme": "https"}, "r0"),
    ("protocol other", [{"paths": ["/"], "protocols": ["https"]}], {"scheme": "http"}, None),
    ("protocol unknown", [{"paths": ["/"]}], {"scheme": "ftp"}, None),
    # all criteria together
    (
        "every criterion",
        [
            {
                "paths": ["/api"],
                "methods": ["PUT"],
                "hosts": ["*.example.com"],
                "headers": {"x-v": ["1"]},
            }
        ],
        {
            "method": "PUT",
            "host": "a.example.com",
            "path": "/api/x",
            "headers": [(b"x-v", b"1")],
        },
        "r0",
    ),
    # routes left out
    ("missing service", [{"paths": ["/"], "service_id": "nope"}], {}, None),
    ("disabled service", [{"paths": ["/"], "service_id": "svc-off"}], {}, None),
]


@pytest.mark.parametrize(
    ("routes", "request_", "expected"),
    [pytest.param(routes, req, exp, id=name) for name, routes, req, exp in CRITERIA],
)
def test_criteria(
    make_router: RouterFactory, routes: list[R], request_: R, expected: str | None
) -> None:
    assert route_name(make_router(*routes), request_) == expected


PRIORITY: list[tuple[str, list[R], R, str]] = [
    (
        "more categories beat input order",
        [{"name": "one", "paths": ["/"]}, {"name": "two", "paths": ["/"], "methods": ["GET"]}],
        {},
        "two",
    ),
    (
        "more categories beat a longer prefix",
        [{"name": "long", "paths": ["/a/b/c"]}, {"name": "host", "paths": ["/"], "hosts": ["x"]}],
        {"host": "x", "path": "/a/b/c"},
        "host",
    ),
    (
        "more categories beat a regex",
        [{"name": "re", "paths": ["~/a"]}, {"name": "m", "paths": ["/"], "methods": ["GET"]}],
        {"path": "/a"},
        "m",
    ),
    (
        "exact host beats wildcard host",
        [{"name": "wild", "hosts": ["*.x.com"]}, {"name": "exact", "hosts": ["a.x.com"]}],
        {"host": "a.x.com"},
        "exact",
    ),
    (
        "exact host beats prefix wildcard",
        [{"name": "wild", "hosts": ["a.*"]}, {"name": "exact", "hosts": ["a.x.com"]}],
        {"host": "a.x.com"},
        "exact",
    ),
    (
        "exact host beats a longer prefix",
        [
            {"name": "wild", "hosts": ["*.x.com"], "paths": ["/long/er"]},
            {"name": "exact", "hosts": ["a.x.com"], "paths": ["/"]},
        ],
        {"host": "a.x.com", "path": "/long/er"},
        "exact",
    ),
    (
        "exact host counts per matched host",
        [
            {"name": "wild", "hosts": ["*.x.com"], "paths": ["/longer"]},
            {"name": "mixed", "hosts": ["a.x.com", "*.x.com"], "paths": ["/"]},
        ],
        {"host": "a.x.com", "path": "/longer"},
        "mixed",
    ),
    (
        "mixed route through its wildcard",
        [
            {"name": "wild", "hosts": ["*.x.com"], "paths": ["/longer"]},
            {"name": "mixed", "hosts": ["a.x.com", "*.x.com"], "paths": ["/"]},
        ],
        {"host": "b.x.com", "path": "/longer"},
        "wild",
    ),
    (
        "tie: a host with a port is no more specific",
        [{"name": "any", "hosts": ["x.com"]}, {"name": "port", "hosts": ["x.com:80"]}],
        {"host": "x.com"},
        "any",
    ),
    (
        "more headers win",
        [
            {"name": "one", "headers": {"x-a": ["1"]}},
            {"name": "two", "headers": {"x-a": ["1"], "x-b": ["1"]}},
        ],
        {"headers": [(b"x-a", b"1"), (b"x-b", b"1")]},
        "two",
    ),
    (
        "more headers beat a regex",
        [
            {"name": "re", "paths": ["~/"], "headers": {"x-a": ["1"]}},
            {"name": "two", "paths": ["/"], "headers": {"x-a": ["1"], "x-b": ["1"]}},
        ],
        {"headers": [(b"x-a", b"1"), (b"x-b", b"1")]},
        "two",
    ),
    (
        "regex beats prefix",
        [{"name": "prefix", "paths": ["/users/me"]}, {"name": "re", "paths": [r"~/users/\w+"]}],
        {"path": "/users/me"},
        "re",
    ),
    (
        "prefix when the regex does not match",
        [{"name": "prefix", "paths": ["/users"]}, {"name": "re", "paths": [r"~/users/\d+"]}],
        {"path": "/users/me"},
        "prefix",
    ),
    (
        "higher regex_priority wins",
        [
            {"name": "low", "paths": ["~/a"], "regex_priority": 1},
            {"name": "high", "paths": ["~/a/b"], "regex_priority": 5},
        ],
        {"path": "/a/b"},
        "high",
    ),
    (
        "negative regex_priority loses",
        [
            {"name": "neg", "paths": ["~/a"], "regex_priority": -1},
            {"name": "zero", "paths": ["~/a"]},
        ],
        {"path": "/a"},
        "zero",
    ),
    (
        "regex_priority ignored for prefix paths",
        [
            {"name": "root", "paths": ["/"], "regex_priority": 10},
            {"name": "v1", "paths": ["/v1"]},
        ],
        {"path": "/v1/x"},
        "v1",
    ),
    (
        "longest prefix wins",
        [{"name": "a", "paths": ["/a"]}, {"name": "ab", "paths": ["/a/b"]}],
        {"path": "/a/b/c"},
        "ab",
    ),
    (
        "shorter prefix when the longer does not match",
        [{"name": "a", "paths": ["/a"]}, {"name": "ab", "paths": ["/a/b"]}],
        {"path": "/a/c"},
        "a",
    ),
    (
        "longest prefix across paths of routes",
        [{"name": "multi", "paths": ["/a", "/a/b/c"]}, {"name": "ab", "paths": ["/a/b"]}],
        {"path": "/a/b/c/d"},
        "multi",
    ),
    (
        "prefix beats no path",
        [{"name": "m", "methods": ["GET"]}, {"name": "p", "paths": ["/"]}],
        {},
        "p",
    ),
    (
        "no path but more categories beats a regex",
        [
            {"name": "re", "paths": ["~/"]},
            {"name": "mh", "methods": ["GET"], "headers": {"x-a": ["1"]}},
        ],
        {"headers": [(b"x-a", b"1")]},
        "mh",
    ),
    (
        "each path of a route ranks on its own",
        [
            {"name": "both", "paths": ["/x", "~/a"], "regex_priority": 3},
            {"name": "re", "paths": ["~/a"], "regex_priority": 2},
            {"name": "long", "paths": ["/x/y"]},
        ],
        {"path": "/x/y"},
        "long",
    ),
    (
        "regex_priority of a route with a prefix path too",
        [
            {"name": "re", "paths": ["~/a"], "regex_priority": 2},
            {"name": "both", "paths": ["/x", "~/a"], "regex_priority": 3},
        ],
        {"path": "/a"},
        "both",
    ),
    (
        "tie: first listed",
        [{"name": "first", "paths": ["/a"]}, {"name": "second", "paths": ["/a"]}],
        {"path": "/a"},
        "first",
    ),
    (
        "tie of regexes: first listed",
        [{"name": "first", "paths": ["~/a"]}, {"name": "second", "paths": ["~/a"]}],
        {"path": "/a"},
        "first",
    ),
    (
        "tie of hosts: first listed",
        [{"name": "first", "hosts": ["*.x.com"]}, {"name": "second", "hosts": ["a.*"]}],
        {"host": "a.x.com"},
        "first",
    ),
    (
        "a better route that does not match is passed over",
        [{"name": "ok", "paths": ["/"]}, {"name": "post", "paths": ["/a"], "methods": ["POST"]}],
        {"path": "/a"},
        "ok",
    ),
]


@pytest.mark.parametrize(
    ("name", "routes", "request_", "expected"),
    [pytest.param(*case, id=case[0]) for case in PRIORITY],
)
def test_priority(
    make_router: RouterFactory, name: str, routes: list[R], request_: R, expected: str
) -> None:
    assert route_name(make_router(*routes), request_) == expected
    if not name.startswith("tie"):  # the winner must not depend on the order of routes
        assert route_name(make_router(*reversed(routes)), request_) == expected


def match(router: Router, path: str, host: str | None = "example.com") -> RouteMatch:
    found, _ = router.match("GET", host, path, [])
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("route", "path", "upstream_path", "matched_path"),
    [
        ({"paths": ["/api"]}, "/api/users", "/users", "/api"),
        ({"paths": ["/api"]}, "/api", "/", "/api"),
        ({"paths": ["/api"], "strip_path": False}, "/api/users", "/api/users", "/api"),
        ({"paths": ["/api"], "service_id": "svc-s"}, "/api/users", "/s/users", "/api"),
        ({"paths": ["/api"], "service_id": "svc-s"}, "/api", "/s", "/api"),
        ({"paths": ["/api/"], "service_id": "svc-s"}, "/api/", "/s/", "/api/"),
        (
            {"paths": ["/api"], "service_id": "svc-s", "strip_path": False},
            "/api/users",
            "/s/api/users",
            "/api",
        ),
        ({"paths": [r"~/v\d+"]}, "/v2/users", "/users", r"~/v\d+"),
        ({"paths": [r"~/v\d+"], "strip_path": False}, "/v2/users", "/v2/users", r"~/v\d+"),
        ({"paths": [r"~/v\d+"], "service_id": "svc-s"}, "/v2/users", "/s/users", r"~/v\d+"),
        ({"methods": ["GET"]}, "/users", "/users", None),
        ({"methods": ["GET"], "service_id": "svc-s"}, "/users", "/s/users", None),
        ({"methods": ["GET"], "service_id": "svc-s"}, "/", "/s", None),
        ({"paths": ["/api"]}, "/api/users?x=1", "/users", "/api"),
        ({"paths": ["/api"]}, "/api/a/../users", "/users", "/api"),
        ({"paths": ["/api"]}, "/api/%75sers", "/users", "/api"),
    ],
)
def test_upstream_path(
    make_router: RouterFactory, route: R, path: str, upstream_path: str, matched_path: str | None
) -> None:
    found = match(make_router(route), path)
    assert (found.upstream_path, found.matched_path) == (upstream_path, matched_path)


def test_preserve_host(make_router: RouterFactory) -> None:
    router = make_router({"paths": ["/"], "preserve_host": True})
    assert match(router, "/", "Example.com:8080").upstream_host == "Example.com:8080"
    assert match(router, "/", None).upstream_host is None
    assert match(make_router({"paths": ["/"]}), "/", "example.com").upstream_host is None


def test_match_carries_route_and_service(
    make_router: RouterFactory, services: dict[str, Service]
) -> None:
    found = match(make_router({"name": "api", "paths": ["/"], "service_id": "svc-s"}), "/")
    assert found.route.name == "api"
    assert found.service == services["svc-s"]
    # and as plain values, what the request path reads (not through pydantic's attribute hook)
    service = services["svc-s"]
    assert (found.route_id, found.route_name) == (found.route.id, "api")
    assert found.upstream == Upstream(
        service.id,
        service.protocol,
        service.host,
        service.port,
        service.retries,
        service.tls_verify,
    )


def test_match_carries_the_route_s_root_attributes_encoded_once(
    make_router: RouterFactory,
) -> None:
    router = make_router({"name": "api", "paths": ["/api", "/"], "service_id": "svc-s"})
    for path, route_path in (("/api/x", "/api"), ("/x", "/")):
        found = match(router, path)
        assert found.span_attributes["http.route"] == route_path
        assert found.encoded_span_attributes == span_attribute_fields(found.span_attributes)
        assert found.encoded_span_attributes is match(router, path).encoded_span_attributes


def test_cache_hit_flag(make_router: RouterFactory) -> None:
    router = make_router({"paths": ["/"]}, cache_size=8)
    first, hit = router.match("GET", "a.com", "/x", [])
    assert not hit
    second, hit = router.match("GET", "a.com", "/x", [])
    assert hit
    assert second is first
    assert router.match("GET", "a.com", "/y", [])[1] is False
    assert router.match("POST", "a.com", "/x", [])[1] is False
    assert router.match("GET", "b.com", "/x", [])[1] is False
    assert router.match("GET", "a.com", "/x", [], "https")[1] is False


def test_cache_remembers_misses(make_router: RouterFactory) -> None:
    router = make_router({"paths": ["/a"]}, cache_size=8)
    assert router.match("GET", "a.com", "/b", []) == (None, False)
    assert router.match("GET", "a.com", "/b", []) == (None, True)


def test_cache_key_has_relevant_headers_only(make_router: RouterFactory) -> None:
    router = make_router({"name": "v1", "headers": {"x-v": ["1"]}}, cache_size=8)
    one = [(b"x-v", b"1"), (b"x-other", b"a")]
    assert route_name(router, {"headers": one}) == "v1"
    found, hit = router.match("GET", "example.com", "/", [(b"x-v", b"1"), (b"x-other", b"b")])
    assert hit
    assert found is not None
    found, hit = router.match("GET", "example.com", "/", [(b"x-v", b"2")])
    assert (found, hit) == (None, False)


def test_cache_is_bounded_lru(make_router: RouterFactory) -> None:
    router = make_router({"paths": ["/"]}, cache_size=2)
    router.match("GET", "h", "/a", [])
    router.match("GET", "h", "/b", [])
    assert router.match("GET", "h", "/a", [])[1]  # /a is now the most recent
    router.match("GET", "h", "/c", [])  # evicts /b
    assert router.match("GET", "h", "/a", [])[1]
    assert not router.match("GET", "h", "/b", [])[1]


def test_cache_off(make_router: RouterFactory) -> None:
    router = make_router({"paths": ["/"]}, cache_size=0)
    router.match("GET", "h", "/a", [])
    assert router.match("GET", "h", "/a", [])[1] is False


def test_long_paths_are_not_cached(make_router: RouterFactory) -> None:
    router = make_router({"paths": ["/"]}, cache_size=8)
    path = "/" + "a" * 5000
    assert router.match("GET", "h", path, [])[0] is not None
    assert router.match("GET", "h", path, [])[1] is False


def test_default_cache_is_on(services: dict[str, Service], make_route: RouteFactory) -> None:
    router = Router.build([make_route("r", paths=["/"])], services)
    router.match("GET", "h", "/", [])
    assert router.match("GET", "h", "/", [])[1]


def test_empty_router(services: dict[str, Service]) -> None:
    assert Router.build([], services).match("GET", "h", "/", []) == (None, False)


ODD_REQUESTS: list[tuple[Any, ...]] = [
    ("", "", "", []),
    ("GET", None, "", []),
    ("GET", "[::1", "no-slash", []),
    ("GET", ":::", "/%", []),
    ("GET", "x.com:99999999", "/%zz/../..", []),
    ("GET", "é.com", "/é/\x00", [(b"x-v", b"\xff\xfe")]),
    ("GET", ".", "/" * 3000, []),
    ("GET", "*.x.com", "/?", [(b"X-V", b"1")]),
    ("GET", "x.com", "/", [(b"x-v", "not bytes")]),
    ("GET", "x.com", "/", [("x-v", b"str name")]),
    ("GET", "x.com", "/", None),
    (None, None, None, None),
    ("GET", 42, "/", []),
]


@pytest.mark.parametrize("args", ODD_REQUESTS)
@pytest.mark.parametrize("cache_size", [0, 16])
def test_odd_input_never_raises(
    make_router: RouterFactory, args: tuple[Any, ...], cache_size: int
) -> None:
    router = make_router(
        {"paths": ["/", "~/x"], "headers": {"x-v": ["1", "~*^a"]}},
        {"hosts": ["*.x.com", "x.*", "x.com:8080"]},
        {"methods": ["GET"]},
        cache_size=cache_size,
    )
    for _ in range(2):
        method, host, path, headers = args
        found, hit = router.match(method, host, path, headers, "weird")
        assert found is None or isinstance(found, RouteMatch)
        assert isinstance(hit, bool)


def test_invalid_regexes_are_left_out(
    make_router: RouterFactory, caplog: pytest.LogCaptureFixture
) -> None:
    # The config validates regexes; a router built from unvalidated routes must still work.
    bad_path = Route.model_construct(
        id="bad",
        name="bad",
        service_id="svc",
        paths=("~(", "/ok"),
        hosts=(),
        methods=(),
        headers={},
        protocols=("http", "https"),
        strip_path=True,
        preserve_host=False,
        regex_priority=0,
    )
    bad_header = Route.model_construct(
        id="hdr",
        name="hdr",
        service_id="svc",
        paths=(),
        hosts=(),
        methods=(),
        headers={"x-v": ("~*(", "1")},
        protocols=("http", "https"),
        strip_path=True,
        preserve_host=False,
        regex_priority=0,
    )
    router = make_router(bad_path, bad_header)
    assert "invalid regex" in caplog.text
    assert route_name(router, {"path": "/ok"}) == "bad"
    assert route_name(router, {"path": "/(", "headers": [(b"x-v", b"1")]}) == "hdr"
    assert route_name(router, {"path": "/(", "headers": [(b"x-v", b"(")]}) is None
