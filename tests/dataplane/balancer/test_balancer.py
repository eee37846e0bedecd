"""Weighted round-robin and passive health of the upstream balancer."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from dataplane.balancer import Balancer
from dataplane.gateway_config import Healthchecks, PassiveHealthcheck, Target, Upstream


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def upstream(weights: dict[str, int], **passive: object) -> Upstream:
    return Upstream(
        id="u1",
        name="orders.upstream",
        targets=tuple(Target(target=t, weight=w) for t, w in weights.items()),
        healthchecks=Healthchecks(passive=PassiveHealthcheck.model_validate(passive)),
    )


def picks(balancer: Balancer, n: int, exclude: frozenset[str] = frozenset()) -> list[str]:
    out = []
    for _ in range(n):
        state = balancer.pick(exclude)
        assert state is not None
        out.append(state.key)
    return out


def test_smooth_weighted_round_robin_interleaves() -> None:
    balancer = Balancer(upstream({"a:1": 5, "b:1": 1, "c:1": 1}))
    assert picks(balancer, 7) == ["a:1", "a:1", "b:1", "a:1", "c:1", "a:1", "a:1"]


@given(st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=6))
def test_each_cycle_honours_weights_exactly(weights: list[int]) -> None:
    balancer = Balancer(upstream({f"t{i}:80": w for i, w in enumerate(weights)}))
    counts = Counter(picks(balancer, sum(weights)))
    assert counts == {f"t{i}:80": w for i, w in enumerate(weights)}


def test_zero_weight_targets_are_never_picked() -> None:
    balancer = Balancer(upstream({"a:1": 0, "b:1": 10}))
    assert set(picks(balancer, 5)) == {"b:1"}
    assert Balancer(upstream({"a:1": 0})).pick() is None


def test_exclude_skips_tried_targets_and_exhaustion_gives_none() -> None:
    balancer = Balancer(upstream({"a:1": 1, "b:1": 1}))
    assert set(picks(balancer, 4, frozenset({"a:1"}))) == {"b:1"}
    assert balancer.pick(frozenset({"a:1", "b:1"})) is None


def test_ipv6_target_key_matches_proxy_host_port() -> None:
    balancer = Balancer(upstream({"[::1]:8080": 1}))
    state = balancer.pick()
    assert state is not None
    assert (state.host, state.port, state.key) == ("::1", 8080, "::1:8080")


def test_tcp_failures_mark_unhealthy_until_the_interval_passes() -> None:
    clock = FakeClock()
    balancer = Balancer(upstream({"a:1": 1, "b:1": 1}, tcp_failures=2, unhealthy_secs=5), clock)
    a = next(s for s in balancer.states if s.key == "a:1")
    balancer.report(a, "tcp_failure")
    assert balancer.healthy() == ["a:1", "b:1"]
    balancer.report(a, "tcp_failure")
    assert balancer.healthy() == ["b:1"]
    assert set(picks(balancer, 4)) == {"b:1"}
    clock.now += 5
    assert balancer.healthy() == ["a:1", "b:1"]
    assert "a:1" in picks(balancer, 2)


def test_a_success_resets_the_counters() -> None:
    balancer = Balancer(upstream({"a:1": 1}, timeouts=2))
    a = balancer.states[0]
    balancer.report(a, "timeout")
    balancer.report(a, "ok", 200)
    balancer.report(a, "timeout")
    assert balancer.healthy() == ["a:1"]
    balancer.report(a, "timeout")
    assert balancer.healthy() == []
    assert balancer.pick() is None


def test_http_statuses_decide_http_failures_and_zero_disables() -> None:
    balancer = Balancer(upstream({"a:1": 1}, http_failures=1, http_statuses=(503,)))
    a = balancer.states[0]
    balancer.report(a, "ok", 500)
    assert balancer.healthy() == ["a:1"]
    balancer.report(a, "ok", 503)
    assert balancer.healthy() == []
    disabled = Balancer(upstream({"a:1": 1}, tcp_failures=0))
    for _ in range(10):
        disabled.report(disabled.states[0], "tcp_failure")
    assert disabled.healthy() == ["a:1"]
