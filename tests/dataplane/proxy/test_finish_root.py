"""``_wire.finish_root``: the root's name and standard attributes from the exchange, in C.

It must leave the root exactly as ``proxy.python_finish_root`` (its reference) does, asking the
exchange's Python code what the Python path asks it (the redacted query, the consumer's ID),
and touch nothing (returning False) when it leaves the request to Python: another class, a value
of another type, no route matched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from dataplane.exchange import Exchange
from dataplane.gateway_config import Route, Service
from dataplane.headers import HeaderList
from dataplane.proxy import python_finish_root
from dataplane.router import RouteMatch, Router
from dataplane.tracing._wire import finish_root
from dataplane.tracing.recorder import RequestTrace

SERVICES = {"svc": Service(id="svc", name="svc", host="upstream")}


def _match(**route: Any) -> RouteMatch:
    router = Router.build([Route(id="r", name="r", service_id="svc", **route)], SERVICES)
    match, _ = router.match("GET", "gateway.test", "/orders/7", [])
    assert match is not None
    return match


@dataclass
class _Consumer:
    id: str


def _exchange(**fields: Any) -> Exchange:
    headers = fields.pop("headers", [(b"user-agent", b"curl/8.5 \xe9"), (b"accept", b"*/*")])
    exchange = Exchange(
        request_id="req-1",
        method=fields.pop("method", "GET"),
        scheme="http",
        host="gateway.test:8000",
        path="/orders/7",
        query_string=fields.pop("query", b""),
        request_headers=HeaderList(headers),
        client_ip="10.0.0.9",
        client_port=50000,
        server_port=8000,
        started_ns=0,
    )
    exchange.response_status = 200
    exchange.request_body_size = 3
    exchange.response_body_size = 40
    exchange.total_ms = 12.5
    exchange.upstream_ms = 3.25
    for name, value in fields.items():
        setattr(exchange, name, value)
    trace = RequestTrace(head=[], tail=[], start_ns=1_000_000)
    trace.root.end(13_000_000)  # (ended: the root keeps this end, whichever path writes it)
    exchange.trace = trace
    return exchange


def _root(exchange: Exchange) -> Any:
    assert exchange.trace is not None
    root = exchange.trace.root
    return (
        root.name,
        root.encoded_attributes,
        dict(root.attributes),
        root.status_code,
        root.start_ns,
        root.end_ns,
    )


CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "plain": ({}, {"paths": ["/orders"]}),
    "a query, a key redacted": ({"query": b"a=1&apikey=s3cret", "redact": {"apikey"}}, {}),
    "no latencies": ({"total_ms": None, "upstream_ms": None}, {}),
    "no upstream time": ({"upstream_ms": 0.0}, {}),
    "a consumer": ({"consumer": _Consumer("alice")}, {}),
    "a 5xx": ({"response_status": 503}, {}),
    "no user agent": ({"headers": [(b"accept", b"*/*")]}, {}),
    "no response": ({"response_status": 0}, {}),
    "a route without paths": ({}, {"hosts": ["gateway.test"]}),
    "a regex route": ({}, {"paths": [r"~/orders/\d+$"]}),
    # the name written at once for ASCII, else formatted (both must read as Python's)
    "a route path not in ASCII": ({}, {"paths": ["~/(orders|\u00e9t\u00e9|\u6ce8\u6587)"]}),
    "a method not in ASCII": ({"method": "GET\u00e9"}, {}),
    "a long route path": ({}, {"paths": ["~/orders(" + "/x" * 500 + ")?"]}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_c_writes_the_root_as_python_does(case: str) -> None:
    fields, route = CASES[case]
    match = _match(**(route or {"paths": ["/orders"]}))
    c_exchange, python_exchange = _exchange(**fields), _exchange(**fields)
    assert finish_root(c_exchange, match) is True
    assert python_finish_root(python_exchange, match) is True
    assert _root(c_exchange) == _root(python_exchange)


def test_what_was_on_the_root_before_stays_or_gives_way_as_in_python() -> None:
    match = _match(paths=["/orders"])
    exchanges = _exchange(response_status=502), _exchange(response_status=502)
    for exchange in exchanges:
        assert exchange.trace is not None
        exchange.trace.root.attributes = {"error.type": "timeout", "url.path": "/old", "x": 1}
    finish_root(exchanges[0], match)
    python_finish_root(exchanges[1], match)
    assert _root(exchanges[0]) == _root(exchanges[1])
    assert exchanges[0].trace is not None
    assert exchanges[0].trace.root.attributes == {"error.type": "timeout", "x": 1}


def test_the_name_is_the_method_and_the_route_path() -> None:
    exchange = _exchange(method="POST")
    finish_root(exchange, _match(paths=["/orders"]))
    assert exchange.trace is not None
    assert exchange.trace.root.name == "POST /orders"


class _OwnAccess(Exchange):
    __slots__ = ()

    def __getattribute__(self, name: str) -> Any:
        return object.__getattribute__(self, name)


def _own_access(**fields: Any) -> Exchange:
    return _as_own_access(_exchange(**fields))


def _as_own_access(exchange: Exchange) -> Exchange:
    """The same exchange as an _OwnAccess (a class C leaves to Python), its slots copied."""
    other = _OwnAccess.__new__(_OwnAccess)
    for name in Exchange.__slots__:
        if hasattr(exchange, name):
            setattr(other, name, getattr(exchange, name))
    return other


def _untraced() -> Exchange:
    exchange = _exchange()
    exchange.trace = None
    return exchange


LEFT: dict[str, Callable[[], tuple[Any, Any]]] = {
    "no route matched": lambda: (_exchange(), None),
    "another exchange class": lambda: (_own_access(), _match(paths=["/o"])),
    "a latency not a float": lambda: (_exchange(total_ms=12), _match(paths=["/o"])),
    "a method not a str": lambda: (_exchange(method=b"GET"), _match(paths=["/o"])),
    "headers not tuples": lambda: (
        _exchange(headers=[[b"user-agent", b"x"]]),
        _match(paths=["/o"]),
    ),
    "a query not bytes": lambda: (_exchange(query="a=1"), _match(paths=["/o"])),
    "no trace": lambda: (_untraced(), _match(paths=["/o"])),
    "not a match": lambda: (_exchange(), object()),
}


@pytest.mark.parametrize("case", list(LEFT))
def test_it_touches_nothing_when_it_leaves_the_request_to_python(case: str) -> None:
    exchange, match = LEFT[case]()
    before = _root(exchange) if exchange.trace is not None else None
    assert finish_root(exchange, match) is False
    assert (_root(exchange) if exchange.trace is not None else None) == before


def test_what_the_exchange_raises_is_raised() -> None:
    class Failing(Exchange):
        __slots__ = ()

        def redacted_query(self, query: bytes | None = None) -> str:
            raise RuntimeError("redaction failed")

    exchange = _exchange(query=b"a=1")
    failing = Failing.__new__(Failing)
    for name in Exchange.__slots__:
        if hasattr(exchange, name):
            setattr(failing, name, getattr(exchange, name))
    with pytest.raises(RuntimeError, match="redaction failed"):
        finish_root(failing, _match(paths=["/orders"]))


def test_an_exchange_whose_class_changes_meanwhile_is_read_through_getattr() -> None:
    class Changing(Exchange):
        __slots__ = ()

        def redacted_query(self, query: bytes | None = None) -> str:
            self.__class__ = _OwnAccess  # type: ignore[assignment]  # (getattr after this)
            return "a=1"

    exchange, expected = _exchange(query=b"a=1"), _exchange(query=b"a=1")
    changing = Changing.__new__(Changing)
    for name in Exchange.__slots__:
        if hasattr(exchange, name):
            setattr(changing, name, getattr(exchange, name))
    match = _match(paths=["/orders"])
    assert finish_root(changing, match) is True
    python_finish_root(expected, match)
    assert _root(changing) == _root(expected)


def test_a_wrong_call_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="finish_root"):
        finish_root()  # type: ignore[call-arg]
