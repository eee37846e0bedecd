"""Tracing sessions as a node runs them: scope lookup, exact sample limits, own-clock expiry.

The request path asks :meth:`SessionTable.candidates` for the sessions whose scope covers the
matched route: one dict lookup, which finds nothing when no session is active.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from dataplane.expr import RuleError, SamplingRule, compile_rule
from dataplane.tracing.wire import span_attribute_fields

__all__ = [
    "ENDED_STATES",
    "NodeSession",
    "SessionDefinition",
    "SessionTable",
    "session_fields",
]

log = logging.getLogger(__name__)

ENDED_STATES: Final = frozenset({"completed", "expired", "stopped", "failed"})


def session_fields(session_ids: tuple[str, ...]) -> bytes:
    """The sessions that kept a trace, as its root span's encoded attribute fields:
    ``gateway.session.id`` (the first), and ``gateway.session.ids`` when there are several
    (the root's other attributes are written encoded too)."""
    attributes: dict[str, Any] = {"gateway.session.id": session_ids[0]}
    if len(session_ids) > 1:
        attributes["gateway.session.ids"] = list(session_ids)
    return span_attribute_fields(attributes)


class SessionDefinition:
    """What the control plane asked for (SessionStart), independent of protobuf."""

    __slots__ = (
        "body_max_bytes",
        "capture",
        "duration_secs",
        "ends_at_unix_nano",
        "max_samples",
        "name",
        "rule",
        "samples_taken",
        "scope_id",
        "scope_kind",
        "session_id",
    )

    def __init__(
        self,
        *,
        session_id: str,
        name: str = "",
        scope_kind: str | None = None,
        scope_id: str | None = None,
        rule: str = "",
        max_samples: int = 100,
        ends_at_unix_nano: int = 0,
        duration_secs: int = 300,
        capture: Iterable[str] = (),
        body_max_bytes: int = 4096,
        samples_taken: int = 0,
    ) -> None:
        self.session_id = session_id
        self.name = name
        self.scope_kind = scope_kind
        self.scope_id = scope_id
        self.rule = rule
        self.max_samples = max_samples
        self.ends_at_unix_nano = ends_at_unix_nano
        self.duration_secs = duration_secs
        self.capture = frozenset(capture)
        self.body_max_bytes = body_max_bytes
        self.samples_taken = samples_taken


class NodeSession:
    """One session on this node: its compiled rule and its sample counter."""

    __slots__ = (
        "body_max_bytes",
        "capture_body",
        "capture_headers",
        "deadline",
        "definition",
        "id",
        "ids",
        "in_flight",
        "max_samples",
        "reported",
        "root_fields",
        "rule",
        "state",
        "tail",
        "taken",
    )

    def __init__(
        self, definition: SessionDefinition, rule: SamplingRule | None, deadline: float
    ) -> None:
        self.definition = definition
        self.id = definition.session_id
        self.ids = (self.id,)
        """The session IDs of a trace only this session kept (made once, not per trace)."""
        self.root_fields = session_fields(self.ids)
        """The root span's session attribute of such a trace, encoded."""
        self.rule = rule
        self.tail = rule is not None and rule.tail
        self.max_samples = definition.max_samples
        self.taken = min(definition.samples_taken, definition.max_samples)
        # the sample count last reported to the control plane (Tracer.progress reports a
        # session whose count moved: no mark per sampled request)
        self.reported = self.taken
        self.deadline = deadline  # time.monotonic() value
        self.capture_headers = "headers" in definition.capture
        self.capture_body = "body" in definition.capture
        self.body_max_bytes = definition.body_max_bytes
        self.state = "active"
        # Traces this session is part of that have not finished yet: the session's end is
        # reported only after they are exported, so the CP has them all once it says "completed".
        self.in_flight = 0

    @property
    def full(self) -> bool:
        """Whether the session kept all the traces it may keep."""
        return self.taken >= self.max_samples

    def take(self) -> bool:
        """Count one kept trace if the limit allows it (exact: one event loop, no await)."""
        if self.state != "active" or self.taken >= self.max_samples:
            return False
        self.taken += 1
        return True


StateListener = Callable[[NodeSession], None]


class SessionTable:
    """The sessions of this node and the index the request path reads."""

    def __init__(self, on_change: StateListener | None = None) -> None:
        self.sessions: dict[str, NodeSession] = {}
        # route ID (None: requests that matched no route) -> active sessions covering it
        self.by_route: dict[str | None, tuple[NodeSession, ...]] = {}
        self._route_services: Mapping[str, str] = {}
        self._on_change = on_change
        self.ended: dict[str, NodeSession] = {}

    # -- request path ------------------------------------------------------------------------

    def candidates(self, route_id: str | None) -> tuple[NodeSession, ...] | None:
        """Active sessions whose scope covers ``route_id``; None when there are none."""
        return self.by_route.get(route_id)

    # -- control ------------------------------------------------------------------------------

    def set_routes(self, route_services: Mapping[str, str]) -> None:
        """The config changed: route ID -> service ID, to resolve service scopes."""
        self._route_services = dict(route_services)
        self._reindex()

    def start(self, definition: SessionDefinition) -> NodeSession:
        """Start (or refresh, after a reconnect) a session; a bad rule fails it."""
        existing = self.sessions.get(definition.session_id)
        if existing is not None:
            existing.taken = max(
                existing.taken, min(definition.samples_taken, existing.max_samples)
            )
            return existing
        ended = self.ended.get(definition.session_id)
        if ended is not None:
            # The CP missed our final report (we were disconnected): say it again.
            if self._on_change is not None:
                self._on_change(ended)
            return ended
        remaining = self._remaining_secs(definition)
        try:
            rule = compile_rule(definition.rule) if definition.rule else None
        except RuleError as exc:
            session = NodeSession(definition, None, time.monotonic())
            self._end(session, "failed")
            log.warning("session %s has an invalid rule: %s", definition.session_id, exc)
            return session
        session = NodeSession(definition, rule, time.monotonic() + remaining)
        if remaining <= 0:
            self._end(session, "expired")
            return session
        self.sessions[session.id] = session
        self._reindex()
        if session.full:
            self.finish(session, "completed")
        elif self._on_change is not None:
            self._on_change(session)
        return session

    @staticmethod
    def _remaining_secs(definition: SessionDefinition) -> float:
        # The node's own clock decides, capped by the duration so a skewed clock cannot
        # make a session run longer than asked.
        remaining = float(definition.duration_secs)
        if definition.ends_at_unix_nano:
            remaining = min(remaining, definition.ends_at_unix_nano / 1e9 - time.time())
        return remaining

    def stop(self, session_id: str) -> None:
        """The control plane stopped (or deleted) the session."""
        session = self.sessions.get(session_id)
        if session is not None:
            self.finish(session, "stopped")

    def expire_due(self, now: float | None = None) -> list[NodeSession]:
        """End sessions whose deadline passed on this node's clock."""
        now = time.monotonic() if now is None else now
        due = [s for s in self.sessions.values() if s.deadline <= now]
        for session in due:
            self.finish(session, "expired")
        return due

    def next_deadline(self) -> float | None:
        """The earliest deadline of an active session (for the expiry timer)."""
        return min((s.deadline for s in self.sessions.values()), default=None)

    def finish(self, session: NodeSession, state: str) -> None:
        """Stop sampling for ``session``; in-flight traces still complete."""
        if session.state in ENDED_STATES:
            return
        self.sessions.pop(session.id, None)
        self._reindex()
        self._end(session, state)

    def _end(self, session: NodeSession, state: str) -> None:
        session.state = state
        self.ended[session.id] = session
        if self._on_change is not None:
            self._on_change(session)

    def _reindex(self) -> None:
        index: dict[str | None, list[NodeSession]] = {}
        for session in self.sessions.values():
            for route_id in self._routes_in_scope(session):
                index.setdefault(route_id, []).append(session)
        self.by_route = {route: tuple(sessions) for route, sessions in index.items()}

    def _routes_in_scope(self, session: NodeSession) -> list[str | None]:
        kind, scope_id = session.definition.scope_kind, session.definition.scope_id
        if kind == "route":
            return [scope_id] if scope_id in self._route_services else []
        if kind == "service":
            return [r for r, s in self._route_services.items() if s == scope_id]
        return [None, *self._route_services]
