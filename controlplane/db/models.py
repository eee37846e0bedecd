"""SQLAlchemy models: the control plane's tables (DESIGN.md §7).

Changing a model means adding an Alembic revision in ``migrations/versions``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "GatewayConfigVersion",
    "Node",
    "SessionTarget",
    "SpanRow",
    "TraceRow",
    "TracingSessionRow",
    "UtcDateTime",
]

# JSONB on PostgreSQL (compact, indexable), JSON text elsewhere.
JsonColumn = JSON().with_variant(JSONB(), "postgresql")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every database (SQLite would otherwise hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a naming convention so migrations are stable across databases."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JsonColumn,
        list[Any]: JsonColumn,
    }


class Node(Base):
    """A data plane node the control plane has seen."""

    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255), default="")
    version: Mapped[str] = mapped_column(String(64), default="")
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="disconnected")
    connected_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_seen: Mapped[datetime | None] = mapped_column(UtcDateTime())
    config_hash: Mapped[str] = mapped_column(String(64), default="")
    config_version: Mapped[int] = mapped_column(BigInteger, default=0)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    traced: Mapped[int] = mapped_column(BigInteger, default=0)
    spans_dropped: Mapped[int] = mapped_column(BigInteger, default=0)


class GatewayConfigVersion(Base):
    """One version of the whole gateway config; the newest row is the current config.

    Every change (CRUD or declarative) validates the whole config and inserts a new version, so
    changes are atomic and concurrent writers conflict on the primary key instead of
    interleaving.
    """

    __tablename__ = "gateway_config_versions"

    version: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
    body: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    change: Mapped[str] = mapped_column(String(255), default="")


class TracingSessionRow(Base):
    """A tracing session: its definition, lifecycle state and timestamps."""

    __tablename__ = "tracing_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(16), index=True)
    scope_kind: Mapped[str | None] = mapped_column(String(16))
    scope_id: Mapped[str | None] = mapped_column(String(64))
    scope_name: Mapped[str | None] = mapped_column(String(255))
    sampling_rule: Mapped[str | None] = mapped_column(Text)
    tail: Mapped[bool] = mapped_column(Boolean, default=False)
    max_samples: Mapped[int] = mapped_column(Integer)
    duration_secs: Mapped[int] = mapped_column(Integer)
    capture: Mapped[list[Any]] = mapped_column(default=list)
    body_max_bytes: Mapped[int] = mapped_column(Integer, default=4096)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class SessionTarget(Base):
    """One targeted node of a session, with the node's progress."""

    __tablename__ = "session_targets"

    session_id: Mapped[str] = mapped_column(
        ForeignKey("tracing_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    node_id: Mapped[str] = mapped_column(String(128), primary_key=True, index=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    samples: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str] = mapped_column(String(255), default="")
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class TraceRow(Base):
    """One traced request as kept by one session: the summary columns the list filters use.

    A request matched by two sessions has one row per session and one set of spans.
    """

    __tablename__ = "traces"
    __table_args__ = (
        Index("ix_traces_session_start", "session_id", "start_time_ns"),
        Index("ix_traces_session_duration", "session_id", "duration_ms"),
    )

    session_id: Mapped[str] = mapped_column(
        ForeignKey("tracing_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    trace_id: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
    node_id: Mapped[str] = mapped_column(String(128), default="")
    start_time_ns: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[float] = mapped_column(Float)
    method: Mapped[str] = mapped_column(String(16), default="")
    path: Mapped[str] = mapped_column(Text, default="")
    status_code: Mapped[int | None] = mapped_column(Integer)
    service_id: Mapped[str | None] = mapped_column(String(64))
    service_name: Mapped[str | None] = mapped_column(String(255))
    route_id: Mapped[str | None] = mapped_column(String(64))
    route_name: Mapped[str | None] = mapped_column(String(255))
    span_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[bool] = mapped_column(Boolean, default=False)


class SpanRow(Base):
    """One span; (trace_id, span_id) is the key that makes ingest idempotent."""

    __tablename__ = "spans"

    trace_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    span_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    parent_span_id: Mapped[str | None] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[int] = mapped_column(Integer)
    start_time_ns: Mapped[int] = mapped_column(BigInteger)
    end_time_ns: Mapped[int] = mapped_column(BigInteger)
    status_code: Mapped[int] = mapped_column(Integer, default=0)
    status_message: Mapped[str] = mapped_column(Text, default="")
    service_name: Mapped[str] = mapped_column(String(255), default="")
    node_id: Mapped[str | None] = mapped_column(String(128))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    events: Mapped[list[Any]] = mapped_column(default=list)
    resource: Mapped[dict[str, Any]] = mapped_column(default=dict)
    scope: Mapped[dict[str, Any]] = mapped_column(default=dict)
