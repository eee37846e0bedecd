"""Path normalisation and Kong's v0 joining of service and request paths."""

from __future__ import annotations

import pytest

from dataplane.router.paths import join_upstream_path, normalize_path


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("/", "/"),
        ("", "/"),
        ("/a/b", "/a/b"),
        ("/a/b/", "/a/b/"),
        ("a/b", "/a/b"),
        ("/a?x=1", "/a"),
        ("/a#frag", "/a"),
        ("//a///b", "/a/b"),
        ("/a/./b", "/a/b"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/public/../admin", "/admin"),
        ("/../../etc", "/etc"),
        ("/..", "/"),
        ("/%61dmin", "/admin"),
        ("/%7euser", "/~user"),
        ("/a%2fb", "/a%2Fb"),  # reserved stays encoded (hex upper-cased)
        ("/a%20b", "/a%20b"),
        ("/%2e%2e/admin", "/admin"),
        ("/%zz", "/%zz"),
        ("/%", "/%"),
        ("/.hidden", "/.hidden"),
        ("/a..b", "/a..b"),
    ],
)
def test_normalize_path(raw: str, normalised: str) -> None:
    assert normalize_path(raw) == normalised


# Kong's path_handling v0 table (docs "Proxy reference"), plus service.path '/' and unset.
@pytest.mark.parametrize(
    ("service_path", "route_path", "request_path", "strip_path", "upstream"),
    [
        ("/s", "/fv0", "/fv0/req", False, "/s/fv0/req"),
        ("/s", "/fv0", "/fv0", False, "/s/fv0"),
        ("/s", "/tv0", "/tv0/req", True, "/s/req"),
        ("/s", "/tv0", "/tv0", True, "/s"),
        ("/s", "/fv0/", "/fv0/req", False, "/s/fv0/req"),
        ("/s", "/fv0/", "/fv0/", False, "/s/fv0/"),
        ("/s", "/tv0/", "/tv0/req", True, "/s/req"),
        ("/s", "/tv0/", "/tv0/", True, "/s/"),
        ("/s/", "/tv0", "/tv0/req", True, "/s/req"),
        ("/s/", "/tv0", "/tv0", True, "/s"),
        ("/s/", "/tv0/", "/tv0/", True, "/s/"),
        ("/s/", "/fv0", "/fv0/req", False, "/s/fv0/req"),
        ("/s", "/", "/", False, "/s"),
        ("/s", "/", "/", True, "/s"),
        ("/s/", "/", "/", True, "/s/"),
        ("/s", "/", "/req", True, "/s/req"),
        (None, "/tv0", "/tv0/req", True, "/req"),
        (None, "/tv0", "/tv0", True, "/"),
        (None, "/tv0/", "/tv0/req", True, "/req"),
        (None, "/fv0", "/fv0/req", False, "/fv0/req"),
        ("/", "/", "/", True, "/"),
        ("/", "/", "/req", False, "/req"),
        (None, "/tv", "/tvx", True, "/x"),
    ],
)
def test_join_v0(
    service_path: str | None, route_path: str, request_path: str, strip_path: bool, upstream: str
) -> None:
    rest = request_path[len(route_path) :] if strip_path else None
    assert join_upstream_path(service_path, request_path, rest) == upstream


def test_join_without_strip_keeps_the_request_path() -> None:
    assert join_upstream_path(None, "/a/b", None) == "/a/b"
    assert join_upstream_path("/s", "/a/b", None) == "/s/a/b"
