"""Cost of the sampling language: ``python -m bench.expr``.

Prints the evaluation cost of a typical 5-predicate rule (absolute microseconds and as a ratio
to a plain dict lookup of the method), the cost of building RequestFacts and evaluating on a
fresh request, and compile time.
"""

from __future__ import annotations

import re
import timeit
from collections.abc import Callable

from dataplane.expr import RequestFacts, compile_rule

RULE = (
    'http.method == "GET" && http.path ^= "/api/" && http.headers.x_debug == "1"'
    ' && net.src.ip in 10.0.0.0/8 && lower(http.host) =^ ".example.com"'
)
REGEX_RULE = (
    'http.method == "GET" && http.path ~ r#"^/api/v[0-9]+/orders/[0-9]+$"#'
    ' && any(http.headers.x_debug) == "1" && net.src.port > 1024 && http.queries.tenant == "acme"'
)
HEADERS: list[tuple[bytes, bytes]] = [
    (b"host", b"api.Example.com:8443"),
    (b"user-agent", b"curl/8.5.0"),
    (b"accept", b"application/json"),
    (b"accept-encoding", b"gzip, br"),
    (b"accept-language", b"en-GB,en;q=0.9"),
    (b"authorization", b"Bearer abc.def.ghi"),
    (b"x-request-id", b"6f1f6b8e-1d6a-4d7f-9a39-1b2f0f1b8a11"),
    (b"x-forwarded-for", b"203.0.113.7"),
    (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    (b"x-debug", b"1"),
    (b"content-type", b"application/json"),
    (b"cookie", b"session=abc"),
]


def make_facts() -> RequestFacts:
    """The request every measurement evaluates; it matches both rules."""
    return RequestFacts(
        method="GET",
        host="api.Example.com:8443",
        path="/api/v2/orders/123",
        query_string=b"tenant=acme&page=2",
        headers=HEADERS,
        scheme="https",
        sni="api.example.com",
        client=("10.1.2.3", 51234),
        server=("10.0.0.5", 8443),
    )


def per_call_us(stmt: Callable[[], object], number: int = 200_000) -> float:
    """Best of five runs, in microseconds per call."""
    best = min(timeit.repeat(stmt, number=number, repeat=5))
    return best / number * 1e6


def main() -> None:
    """Measure and print."""
    rule = compile_rule(RULE)
    regex_rule = compile_rule(REGEX_RULE)
    facts = make_facts()
    assert rule.matches(facts)
    assert regex_rule.matches(facts)
    request = {"method": "GET", "path": "/api/v2/orders/123"}

    baseline = per_call_us(lambda: request["method"] == "GET")
    matches = rule.matches
    warm = per_call_us(lambda: matches(facts))
    regex_warm = per_call_us(lambda: regex_rule.matches(facts))
    construct = per_call_us(make_facts)
    cold = per_call_us(lambda: matches(make_facts()))
    regex_cold = per_call_us(lambda: regex_rule.matches(make_facts()))
    compile_us = per_call_us(lambda: compile_rule(RULE), number=2_000)

    def compile_uncached() -> None:
        re.purge()  # also pay for compiling the regex
        compile_rule(REGEX_RULE)

    regex_compile_us = per_call_us(compile_uncached, number=500)

    print(f"rule: {RULE}")
    _row("dict lookup of the method (baseline)", baseline)
    _row("matches(), facts cached", warm, baseline)
    _row("RequestFacts(...)", construct)
    _row("RequestFacts(...) + matches()", cold, baseline)
    _row("compile_rule()", compile_us)
    print(f"rule: {REGEX_RULE}")
    _row("matches(), facts cached", regex_warm, baseline)
    _row("RequestFacts(...) + matches()", regex_cold, baseline)
    _row("compile_rule(), regex not cached", regex_compile_us)


def _row(label: str, us: float, baseline: float | None = None) -> None:
    ratio = f"  ({us / baseline:5.1f}x the dict lookup)" if baseline else ""
    print(f"  {label:<40}{us:9.3f} us{ratio}")


if __name__ == "__main__":
    main()
