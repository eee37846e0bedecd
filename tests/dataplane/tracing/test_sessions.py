"""Sessions on a node: scope index, exact limits, own-clock expiry, reconnect behaviour."""

from __future__ import annotations

import time

from dataplane.tracing.sessions import NodeSession, SessionDefinition, SessionTable

ROUTES = {"r-orders": "s-shop", "r-cart": "s-shop", "r-admin": "s-admin"}


def _table() -> tuple[SessionTable, list[tuple[str, str]]]:
    changes: list[tuple[str, str]] = []
    table = SessionTable(on_change=lambda s: changes.append((s.id, s.state)))
    table.set_routes(ROUTES)
    return table, changes


def _start(table: SessionTable, session_id: str, **kwargs: object) -> NodeSession:
    return table.start(SessionDefinition(session_id=session_id, duration_secs=60, **kwargs))  # type: ignore[arg-type]


def test_no_sessions_means_no_candidates() -> None:
    table, _ = _table()
    assert table.candidates("r-orders") is None
    assert table.candidates(None) is None


def test_scopes_index_routes() -> None:
    table, _ = _table()
    everything = _start(table, "all")
    shop = _start(table, "shop", scope_kind="service", scope_id="s-shop")
    cart = _start(table, "cart", scope_kind="route", scope_id="r-cart")
    assert table.candidates("r-orders") == (everything, shop)
    assert table.candidates("r-cart") == (everything, shop, cart)
    assert table.candidates("r-admin") == (everything,)
    assert table.candidates(None) == (everything,)


def test_config_change_reindexes_service_scopes() -> None:
    table, _ = _table()
    shop = _start(table, "shop", scope_kind="service", scope_id="s-shop")
    table.set_routes({**ROUTES, "r-new": "s-shop"})
    assert table.candidates("r-new") == (shop,)


def test_take_is_exact_and_full_session_completes() -> None:
    table, changes = _table()
    session = _start(table, "s", max_samples=2)
    assert session.take()
    assert session.take()
    assert not session.take()
    table.finish(session, "completed")
    assert table.candidates("r-orders") is None
    assert changes[-1] == ("s", "completed")


def test_restart_after_reconnect_keeps_the_higher_count() -> None:
    table, _ = _table()
    session = _start(table, "s", max_samples=10)
    session.take()
    again = _start(table, "s", max_samples=10, samples_taken=4)
    assert again is session
    assert session.taken == 4


def test_node_restart_resumes_from_the_cp_count() -> None:
    table, _ = _table()
    session = _start(table, "s", max_samples=3, samples_taken=3)
    assert session.state == "completed"


def test_ended_session_started_again_reports_its_end_again() -> None:
    table, changes = _table()
    session = _start(table, "s")
    table.stop("s")
    changes.clear()
    assert _start(table, "s") is session
    assert changes == [("s", "stopped")]


def test_expiry_on_own_clock() -> None:
    table, changes = _table()
    session = _start(table, "s")
    assert table.expire_due(time.monotonic()) == []
    assert table.expire_due(session.deadline + 0.001) == [session]
    assert session.state == "expired"
    assert changes[-1] == ("s", "expired")


def test_ends_at_in_the_past_expires_at_once() -> None:
    table, _ = _table()
    past = int((time.time() - 5) * 1e9)
    session = _start(table, "s", ends_at_unix_nano=past)
    assert session.state == "expired"
    assert table.candidates("r-orders") is None


def test_invalid_rule_fails_the_session() -> None:
    table, changes = _table()
    session = _start(table, "s", rule="http.nope == 1")
    assert session.state == "failed"
    assert changes == [("s", "failed")]
