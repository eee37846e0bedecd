"""Tracing sessions: create, list, stop, delete, node progress and the end of sessions."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from controlplane.cluster.registry import NodeRegistry
from controlplane.db.models import Node, SessionTarget, SpanRow, TraceRow, TracingSessionRow
from controlplane.errors import Invalid, NotFound
from controlplane.schemas import (
    ErrorDetail,
    Page,
    ScopePublic,
    SessionTargetPublic,
    TracingSessionCreate,
    TracingSessionPublic,
)
from controlplane.services.config import current_config
from dataplane.expr import RuleError, compile_rule
from dataplane.gateway_config import GatewayConfig
from protos.activetrace.cluster.v1 import cluster_pb2 as pb

__all__ = [
    "TERMINAL_TARGET_STATES",
    "active_session_messages",
    "create_session",
    "delete_session",
    "end_due_sessions",
    "get_session",
    "list_sessions",
    "record_progress",
    "stop_message",
    "stop_session",
]

TERMINAL_TARGET_STATES = frozenset({"completed", "expired", "stopped", "failed"})
LIVE_SESSION_STATES = ("pending", "active")

_PROGRESS_STATES = {
    pb.SESSION_STATE_ACTIVE: "active",
    pb.SESSION_STATE_COMPLETED: "completed",
    pb.SESSION_STATE_EXPIRED: "expired",
    pb.SESSION_STATE_STOPPED: "stopped",
    pb.SESSION_STATE_FAILED: "failed",
}


async def create_session(
    db: AsyncSession,
    registry: NodeRegistry,
    body: TracingSessionCreate,
    *,
    now: datetime,
    retention: timedelta,
) -> TracingSessionPublic:
    """Validate and store a session, then start it on its connected target nodes."""
    await _check_targets(db, body.targets)
    kind, scope_id, scope_name = _resolve_scope((await current_config(db)).config, body)
    tail = _check_rule(body.sampling_rule)
    row = TracingSessionRow(
        id=str(uuid.uuid4()),
        name=body.name,
        status="pending",
        scope_kind=kind,
        scope_id=scope_id,
        scope_name=scope_name,
        sampling_rule=body.sampling_rule,
        tail=tail,
        max_samples=body.max_samples,
        duration_secs=body.duration_secs,
        capture=list(body.capture),
        body_max_bytes=body.body_max_bytes,
        created_at=now,
        ends_at=now + timedelta(seconds=body.duration_secs),
        expires_at=now + retention,
    )
    targets = [SessionTarget(session_id=row.id, node_id=n, updated_at=now) for n in body.targets]
    db.add(row)
    await db.flush()  # the session row first: targets reference it
    db.add_all(targets)
    await db.commit()
    for target in targets:
        registry.send(target.node_id, start_message(row, target))
    return _public(row, targets)


async def _check_targets(db: AsyncSession, targets: Sequence[str]) -> None:
    known = set(await db.scalars(select(Node.id).where(Node.id.in_(targets))))
    errors = [
        ErrorDetail(loc=["body", "targets", index], message=f"unknown node {node_id!r}")
        for index, node_id in enumerate(targets)
        if node_id not in known
    ]
    if errors:
        raise Invalid(errors[0].message, errors)


def _resolve_scope(
    config: GatewayConfig, body: TracingSessionCreate
) -> tuple[str | None, str | None, str | None]:
    if body.scope.service is not None:
        ref = body.scope.service
        for service in config.services:
            if ref in (service.id, service.name):
                return "service", service.id, service.name
        raise Invalid.at(["body", "scope", "service"], f"unknown service {ref!r}")
    if body.scope.route is not None:
        ref = body.scope.route
        for route in config.routes:
            if ref in (route.id, route.name):
                return "route", route.id, route.name
        raise Invalid.at(["body", "scope", "route"], f"unknown route {ref!r}")
    return None, None, None


def _check_rule(rule: str | None) -> bool:
    """Compile the rule with the data plane's compiler; returns whether it is a tail rule."""
    if rule is None:
        return False
    try:
        return bool(compile_rule(rule).tail)
    except RuleError as exc:
        errors = [
            ErrorDetail(loc=["body", "sampling_rule"], message=e.message, start=e.start, end=e.end)
            for e in exc.errors
        ]
        raise Invalid(f"invalid sampling_rule: {errors[0].message}", errors) from None


def start_message(row: TracingSessionRow, target: SessionTarget) -> pb.CpMessage:
    """The SessionStart a target node receives (again after a reconnect, with its samples)."""
    scope = pb.SessionScope()
    if row.scope_kind == "service" and row.scope_id:
        scope.service_id = row.scope_id
    elif row.scope_kind == "route" and row.scope_id:
        scope.route_id = row.scope_id
    return pb.CpMessage(
        session_start=pb.SessionStart(
            session_id=row.id,
            name=row.name,
            scope=scope,
            sampling_rule=row.sampling_rule or "",
            max_samples=row.max_samples,
            ends_at_unix_nano=int(row.ends_at.timestamp() * 1e9),
            duration_secs=row.duration_secs,
            capture=row.capture,
            body_max_bytes=row.body_max_bytes,
            samples_taken=target.samples,
        )
    )


def stop_message(session_id: str, reason: str) -> pb.CpMessage:
    """The SessionStop a node receives."""
    return pb.CpMessage(session_stop=pb.SessionStop(session_id=session_id, reason=reason))


async def get_session(db: AsyncSession, session_id: str) -> TracingSessionPublic:
    """One session, or 404."""
    row = await _row(db, session_id)
    targets = (await _targets_of(db, [row.id]))[row.id]
    return _public(row, targets)


async def _row(db: AsyncSession, session_id: str) -> TracingSessionRow:
    row = await db.get(TracingSessionRow, session_id)
    if row is None:
        raise NotFound(f"tracing session {session_id!r} not found")
    return row


async def _targets_of(
    db: AsyncSession, session_ids: Sequence[str]
) -> dict[str, list[SessionTarget]]:
    out: dict[str, list[SessionTarget]] = defaultdict(list)
    rows = await db.scalars(
        select(SessionTarget)
        .where(SessionTarget.session_id.in_(session_ids))
        .order_by(SessionTarget.node_id)
    )
    for target in rows:
        out[target.session_id].append(target)
    return out


async def list_sessions(
    db: AsyncSession,
    *,
    status: str | None = None,
    node_id: str | None = None,
    limit: int = 50,
    after: str | None = None,
) -> Page[TracingSessionPublic]:
    """Sessions, newest first, optionally filtered by status or targeted node."""
    query = select(TracingSessionRow).order_by(
        TracingSessionRow.created_at.desc(), TracingSessionRow.id.desc()
    )
    if status is not None:
        query = query.where(TracingSessionRow.status == status)
    if node_id is not None:
        query = query.where(
            TracingSessionRow.id.in_(
                select(SessionTarget.session_id).where(SessionTarget.node_id == node_id)
            )
        )
    if after is not None:
        created_at, last_id = _decode_cursor(after)
        query = query.where(
            tuple_(TracingSessionRow.created_at, TracingSessionRow.id) < (created_at, last_id)
        )
    rows = list(await db.scalars(query.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    targets = await _targets_of(db, [r.id for r in rows])
    cursor = _encode_cursor(rows[-1]) if more else None
    return Page[TracingSessionPublic](
        items=[_public(r, targets[r.id]) for r in rows], next_cursor=cursor
    )


def _encode_cursor(row: TracingSessionRow) -> str:
    raw = f"{row.created_at.isoformat()}|{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, _, last_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(created), last_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Invalid.at(["query", "after"], "malformed cursor") from None


async def stop_session(
    db: AsyncSession, registry: NodeRegistry, session_id: str, *, now: datetime
) -> TracingSessionPublic:
    """Stop a live session on its nodes; stopping an ended session changes nothing."""
    row = await _row(db, session_id)
    targets = (await _targets_of(db, [row.id]))[row.id]
    if row.status in LIVE_SESSION_STATES:
        row.status = "stopped"
        row.ended_at = now
        for target in targets:
            if target.state not in TERMINAL_TARGET_STATES:
                target.state = "stopped"
                target.updated_at = now
        await db.commit()
        registry.send_many([t.node_id for t in targets], stop_message(row.id, "stopped"))
    return _public(row, targets)


async def delete_session(db: AsyncSession, registry: NodeRegistry, session_id: str) -> None:
    """Stop a session on its nodes and remove it with its traces."""
    row = await _row(db, session_id)
    targets = (await _targets_of(db, [row.id]))[row.id]
    live = row.status in LIVE_SESSION_STATES
    await delete_sessions_data(db, [row.id])
    await db.commit()
    if live:  # after the commit: progress a node sends in reply finds the rows gone, not half
        registry.send_many([t.node_id for t in targets], stop_message(row.id, "deleted"))


async def delete_sessions_data(db: AsyncSession, session_ids: Sequence[str]) -> None:
    """Delete sessions, their trace rows and the spans no other session still references."""
    trace_ids = select(TraceRow.trace_id).where(TraceRow.session_id.in_(session_ids))
    still_used = select(TraceRow.trace_id).where(TraceRow.session_id.not_in(session_ids))
    await db.execute(
        delete(SpanRow)
        .where(SpanRow.trace_id.in_(trace_ids))
        .where(SpanRow.trace_id.not_in(still_used))
    )
    await db.execute(delete(TraceRow).where(TraceRow.session_id.in_(session_ids)))
    await db.execute(delete(SessionTarget).where(SessionTarget.session_id.in_(session_ids)))
    await db.execute(delete(TracingSessionRow).where(TracingSessionRow.id.in_(session_ids)))


async def record_progress(
    db: AsyncSession, node_id: str, progress: pb.SessionProgress, *, now: datetime
) -> None:
    """Apply a node's SessionProgress to its target row and the session's status."""
    target = await db.get(SessionTarget, (progress.session_id, node_id))
    row = await db.get(TracingSessionRow, progress.session_id)
    if target is None or row is None:
        return
    state = _PROGRESS_STATES.get(progress.state)
    target.samples = max(target.samples, progress.samples)
    target.updated_at = now
    if progress.message:
        target.message = progress.message[:255]
    if state is not None and target.state not in TERMINAL_TARGET_STATES:
        target.state = state
    if row.status == "pending" and target.state in ("active", "completed"):
        row.status = "active"
        row.started_at = row.started_at or now
    try:
        await db.flush()
        await _settle(db, row, now)
        await db.commit()
    except StaleDataError:  # the session was deleted while this progress was applied
        await db.rollback()


async def _settle(db: AsyncSession, row: TracingSessionRow, now: datetime) -> None:
    """End a live session once every target has finished."""
    if row.status not in LIVE_SESSION_STATES:
        return
    states = list(
        await db.scalars(select(SessionTarget.state).where(SessionTarget.session_id == row.id))
    )
    if states and all(s in TERMINAL_TARGET_STATES for s in states):
        row.status = "completed" if row.started_at is not None else "expired"
        row.ended_at = now


async def end_due_sessions(db: AsyncSession, registry: NodeRegistry, *, now: datetime) -> int:
    """End live sessions whose duration is over (the nodes end them on their own clocks too)."""
    rows = list(
        await db.scalars(
            select(TracingSessionRow)
            .where(TracingSessionRow.status.in_(LIVE_SESSION_STATES))
            .where(TracingSessionRow.ends_at <= now)
        )
    )
    if not rows:
        return 0
    targets = await _targets_of(db, [r.id for r in rows])
    for row in rows:
        for target in targets[row.id]:
            if target.state not in TERMINAL_TARGET_STATES:
                target.state = "expired"
                target.updated_at = now
        row.status = "completed" if row.started_at is not None else "expired"
        row.ended_at = now
    await db.commit()
    for row in rows:
        registry.send_many([t.node_id for t in targets[row.id]], stop_message(row.id, "expired"))
    return len(rows)


async def active_session_messages(
    db: AsyncSession, node_id: str, running: Sequence[str]
) -> list[pb.CpMessage]:
    """What a (re)connecting node must hear: live sessions to run, others to stop."""
    pairs = (
        await db.execute(
            select(TracingSessionRow, SessionTarget)
            .join(SessionTarget, SessionTarget.session_id == TracingSessionRow.id)
            .where(SessionTarget.node_id == node_id)
            .where(TracingSessionRow.status.in_(LIVE_SESSION_STATES))
            .where(SessionTarget.state.not_in(TERMINAL_TARGET_STATES))
        )
    ).all()
    messages = [start_message(row, target) for row, target in pairs]
    live = {row.id for row, _ in pairs}
    messages.extend(stop_message(sid, "not active") for sid in running if sid not in live)
    return messages


def _public(row: TracingSessionRow, targets: Sequence[SessionTarget]) -> TracingSessionPublic:
    kind = row.scope_kind or "all"
    return TracingSessionPublic(
        id=row.id,
        name=row.name,
        status=row.status,
        scope=ScopePublic(kind=kind, id=row.scope_id, name=row.scope_name),
        sampling_rule=row.sampling_rule,
        tail=row.tail,
        max_samples=row.max_samples,
        duration_secs=row.duration_secs,
        capture=list(row.capture),
        body_max_bytes=row.body_max_bytes,
        samples=sum(t.samples for t in targets),
        targets=[
            SessionTargetPublic(
                node_id=t.node_id,
                state=t.state,
                samples=t.samples,
                message=t.message,
            )
            for t in targets
        ],
        created_at=row.created_at,
        started_at=row.started_at,
        ends_at=row.ends_at,
        ended_at=row.ended_at,
        expires_at=row.expires_at,
    )
