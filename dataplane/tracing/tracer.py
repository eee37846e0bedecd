"""The node's tracer: decides which requests are traced and hands finished traces to export."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any

from dataplane.expr import RequestFacts
from dataplane.tracing.export import SpanExport
from dataplane.tracing.recorder import RequestTrace, parse_traceparent
from dataplane.tracing.sessions import ENDED_STATES, NodeSession, SessionTable, session_fields
from dataplane.tracing.spans import Span
from protos.activetrace.cluster.v1 import cluster_pb2 as pb

__all__ = ["ALWAYS_REDACTED", "Tracer", "begin_head", "capture_headers", "finish_head"]

ALWAYS_REDACTED = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})
REDACTED = "[REDACTED]"
_ENDED_KEEP_SECS = 3600.0
_SESSION_FIELDS_KEPT = 256  # encoded session attributes kept, per set of sessions
_session_id = attrgetter("id")

_STATES = {
    "active": pb.SESSION_STATE_ACTIVE,
    "completed": pb.SESSION_STATE_COMPLETED,
    "expired": pb.SESSION_STATE_EXPIRED,
    "stopped": pb.SESSION_STATE_STOPPED,
    "failed": pb.SESSION_STATE_FAILED,
}


def python_begin_head(
    candidates: tuple[NodeSession, ...],
    start_ns: int,
    traceparent: bytes | None,
    router_end_ns: int = 0,
    router_fields: bytes = b"",
) -> RequestTrace | None:
    """``_wire.begin_head``'s place without the extension: None (not done), so that
    :meth:`Tracer.begin` decides for every request in Python."""
    return None


begin_head: Callable[..., RequestTrace | None] = python_begin_head
"""``begin_head(candidates, start_ns, traceparent[, router_end_ns, router_fields])``: the start
of a trace that head sessions keep, when nothing calls for Python: C (``_wire.begin_head``) when
built. It does what :meth:`Tracer.begin` does when no candidate has a rule or is a tail
session, none is filled by this request and no ``traceparent`` came (counts the request on
each session that takes it, makes the trace) and returns the trace, or None, having touched
nothing, for :meth:`Tracer.begin` to decide: the proxy calls it first. Given the router's end
and encoded fields, the trace also holds the router span the proxy would make next (a child of
the root from ``start_ns`` to ``router_end_ns``)."""


def python_finish_head(trace: RequestTrace, export: SpanExport) -> tuple[str, ...] | None:
    """``_wire.finish_head``'s place without the extension: None (not done), so that
    :meth:`Tracer.finish` does the whole end of every trace in Python."""
    return None


finish_head: Callable[[RequestTrace, SpanExport], tuple[str, ...] | None] = python_finish_head
"""The end of a trace that one head session kept, whole, when nothing calls for Python: C
(``_wire.finish_head``) when built. It does what :meth:`Tracer.finish` does for such a trace
(the session's root fields on the root, the spans encoded into the batch its session IDs are
filling, the span counts, the in-flight count) and returns the session IDs, or None, having
touched nothing, when the batch is full, the buffer at its bound, the session's end to report,
or anything is not as the node makes it."""
if not TYPE_CHECKING:
    with contextlib.suppress(ImportError):  # not built: the Python path does it all
        from dataplane.tracing._wire import begin_head, finish_head

FactsFactory = Callable[..., RequestFacts]
"""Builds a request's facts from the arguments given with it (only when a rule needs them; no
closure per request: a lambda would make the proxy's locals cells on every request)."""


def capture_headers(
    prefix: str, raw: Iterable[tuple[bytes, bytes]], redact: Iterable[str]
) -> dict[str, list[str]]:
    """Headers as ``<prefix><name>`` string arrays, secrets replaced by ``[REDACTED]``."""
    hidden = ALWAYS_REDACTED.union(name.lower() for name in redact)
    out: dict[str, list[str]] = {}
    for key, value in raw:
        name = key.decode("latin-1").lower()
        text = REDACTED if name in hidden else value.decode("latin-1")
        out.setdefault(prefix + name, []).append(text)
    return out


class Tracer:
    """Sampling decisions, exact limits, and the hand-off of finished traces to export."""

    def __init__(self, export: SpanExport) -> None:
        self.export = export
        self.sessions = SessionTable(on_change=self._changed)
        self.dirty: set[str] = set()
        self._ended_at: dict[str, float] = {}
        self._session_fields: dict[tuple[str, ...], bytes] = {}

    @property
    def traced(self) -> int:
        """Traces the node kept (counted on the export, where ``_wire.finish_head`` counts the
        ones it finishes)."""
        return self.export.kept_traces

    # -- request path ---------------------------------------------------------------------

    def begin(
        self,
        candidates: tuple[NodeSession, ...],
        start_ns: int,
        traceparent: bytes | None,
        facts: FactsFactory,
        *facts_args: Any,
    ) -> RequestTrace | None:
        """Decide, when the request arrives, which sessions trace it (None: not traced)."""
        head: list[NodeSession] = []
        tail: list[NodeSession] = []
        request_facts: RequestFacts | None = None
        for session in candidates:
            if session.tail:
                tail.append(session)
                continue
            if session.rule is not None:
                if request_facts is None:
                    request_facts = facts(*facts_args)
                if not session.rule.matches(request_facts):
                    continue
            if session.take():
                head.append(session)
                # full (the property inline: CPython 3.11 does not specialize reading one)
                if session.taken >= session.max_samples:
                    self.sessions.finish(session, "completed")
        if not head and not tail:
            return None
        parent = parse_traceparent(traceparent.decode("latin-1")) if traceparent else None
        return RequestTrace(head=head, tail=tail, start_ns=start_ns, parent=parent)

    def finish(
        self, trace: RequestTrace, facts: FactsFactory | None = None, *facts_args: Any
    ) -> tuple[str, ...]:
        """At the log phase: tail decisions, then export; returns the sessions that kept it."""
        session_ids = finish_head(trace, self.export)  # nearly every trace, whole (and counted)
        if session_ids is not None:
            return session_ids
        kept = trace.head
        tail = trace.tail
        if tail:
            kept = list(kept)
            response_facts = facts(*facts_args) if facts is not None else None
            for session in tail:
                rule = session.rule
                if (
                    rule is not None
                    and response_facts is not None
                    and rule.matches(response_facts)
                    and session.take()
                ):
                    kept.append(session)
                    if session.full:
                        self.sessions.finish(session, "completed")
        if len(kept) == 1:  # nearly every trace: the IDs and the root's fields made once
            only = kept[0]
            session_ids = only.ids
            trace.root.encoded_attributes += only.root_fields
        else:
            session_ids = tuple(map(_session_id, kept))
            if session_ids:
                trace.root.encoded_attributes += self._session_fields.get(
                    session_ids
                ) or self._encode_sessions(session_ids)
        if session_ids:
            self.export.submit(session_ids, trace.trace_id, trace.spans)
            self.export.kept_traces += 1
        # every session involved; without tail sessions that is the head (no list made)
        for session in trace.sessions() if tail else trace.head:
            session.in_flight -= 1
            if session.in_flight == 0 and session.state in ENDED_STATES:
                self.dirty.add(session.id)
        return session_ids

    def _encode_sessions(self, session_ids: tuple[str, ...]) -> bytes:
        """:func:`session_fields` of a set of sessions, kept (written once per set of
        sessions, not as a dict on every root)."""
        if len(self._session_fields) >= _SESSION_FIELDS_KEPT:
            self._session_fields.clear()
        fields = self._session_fields[session_ids] = session_fields(session_ids)
        return fields

    def export_late(
        self, session_ids: tuple[str, ...], trace_id: bytes, spans: Sequence[Span]
    ) -> None:
        """Spans of an already exported trace (e.g. http-log's batched call)."""
        self.export.submit(session_ids, trace_id, spans)

    # -- reporting ------------------------------------------------------------------------

    def _changed(self, session: NodeSession) -> None:
        self.dirty.add(session.id)
        if session.state in ENDED_STATES:
            self._ended_at.setdefault(session.id, time.monotonic())

    def mark_all_dirty(self) -> None:
        """After a reconnect: report every session we know again."""
        self.dirty.update(self.sessions.sessions)
        self.dirty.update(self.sessions.ended)

    def progress(self) -> list[pb.SessionProgress]:
        """Progress reports to send now.

        An ended session is reported only once its in-flight traces finished, after flushing
        export, so the control plane has every trace when it learns the session ended.
        """
        reports: list[pb.SessionProgress] = []
        flushed = False
        for sampling in self.sessions.sessions.values():  # sampled since the last report
            if sampling.taken != sampling.reported:
                self.dirty.add(sampling.id)
        for session_id in sorted(self.dirty):
            session = self.sessions.sessions.get(session_id) or self.sessions.ended.get(session_id)
            if session is None:
                continue
            if session.state in ENDED_STATES:
                if session.in_flight > 0:
                    continue
                if not flushed:
                    self.export.flush()
                    flushed = True
            reports.append(
                pb.SessionProgress(
                    session_id=session.id, samples=session.taken, state=_STATES[session.state]
                )
            )
            session.reported = session.taken
            self.dirty.discard(session_id)
        self._prune_ended()
        return reports

    def _prune_ended(self) -> None:
        cutoff = time.monotonic() - _ENDED_KEEP_SECS
        for session_id, ended_at in list(self._ended_at.items()):
            if ended_at < cutoff:
                del self._ended_at[session_id]
                self.sessions.ended.pop(session_id, None)
