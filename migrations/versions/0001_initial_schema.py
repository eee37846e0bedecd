"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "gateway_config_versions",
        sa.Column("version", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("body", JSON_TYPE, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("change", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_gateway_config_versions")),
    )
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("labels", JSON_TYPE, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("connected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("config_hash", sa.String(length=64), nullable=False),
        sa.Column("config_version", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("traced", sa.BigInteger(), nullable=False),
        sa.Column("spans_dropped", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_nodes")),
    )
    op.create_table(
        "spans",
        sa.Column("trace_id", sa.String(length=32), nullable=False),
        sa.Column("span_id", sa.String(length=16), nullable=False),
        sa.Column("parent_span_id", sa.String(length=16), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.Integer(), nullable=False),
        sa.Column("start_time_ns", sa.BigInteger(), nullable=False),
        sa.Column("end_time_ns", sa.BigInteger(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=False),
        sa.Column("service_name", sa.String(length=255), nullable=False),
        sa.Column("node_id", sa.String(length=128), nullable=True),
        sa.Column("attributes", JSON_TYPE, nullable=False),
        sa.Column("events", JSON_TYPE, nullable=False),
        sa.Column("resource", JSON_TYPE, nullable=False),
        sa.Column("scope", JSON_TYPE, nullable=False),
        sa.PrimaryKeyConstraint("trace_id", "span_id", name=op.f("pk_spans")),
    )
    op.create_table(
        "tracing_sessions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("scope_kind", sa.String(length=16), nullable=True),
        sa.Column("scope_id", sa.String(length=64), nullable=True),
        sa.Column("scope_name", sa.String(length=255), nullable=True),
        sa.Column("sampling_rule", sa.Text(), nullable=True),
        sa.Column("tail", sa.Boolean(), nullable=False),
        sa.Column("max_samples", sa.Integer(), nullable=False),
        sa.Column("duration_secs", sa.Integer(), nullable=False),
        sa.Column("capture", JSON_TYPE, nullable=False),
        sa.Column("body_max_bytes", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracing_sessions")),
    )
    with op.batch_alter_table("tracing_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_tracing_sessions_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_tracing_sessions_expires_at"), ["expires_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_tracing_sessions_status"), ["status"], unique=False)

    op.create_table(
        "session_targets",
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("node_id", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("message", sa.String(length=255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["tracing_sessions.id"],
            name=op.f("fk_session_targets_session_id_tracing_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "node_id", name=op.f("pk_session_targets")),
    )
    with op.batch_alter_table("session_targets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_session_targets_node_id"), ["node_id"], unique=False)

    op.create_table(
        "traces",
        sa.Column("session_id", sa.String(length=36), nullable=False),
        sa.Column("trace_id", sa.String(length=32), nullable=False),
        sa.Column("node_id", sa.String(length=128), nullable=False),
        sa.Column("start_time_ns", sa.BigInteger(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("service_id", sa.String(length=64), nullable=True),
        sa.Column("service_name", sa.String(length=255), nullable=True),
        sa.Column("route_id", sa.String(length=64), nullable=True),
        sa.Column("route_name", sa.String(length=255), nullable=True),
        sa.Column("span_count", sa.Integer(), nullable=False),
        sa.Column("error", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["tracing_sessions.id"],
            name=op.f("fk_traces_session_id_tracing_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "trace_id", name=op.f("pk_traces")),
    )
    with op.batch_alter_table("traces", schema=None) as batch_op:
        batch_op.create_index(
            "ix_traces_session_duration", ["session_id", "duration_ms"], unique=False
        )
        batch_op.create_index(
            "ix_traces_session_start", ["session_id", "start_time_ns"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_traces_trace_id"), ["trace_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("traces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_traces_trace_id"))
        batch_op.drop_index("ix_traces_session_start")
        batch_op.drop_index("ix_traces_session_duration")

    op.drop_table("traces")
    with op.batch_alter_table("session_targets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_session_targets_node_id"))

    op.drop_table("session_targets")
    with op.batch_alter_table("tracing_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tracing_sessions_status"))
        batch_op.drop_index(batch_op.f("ix_tracing_sessions_expires_at"))
        batch_op.drop_index(batch_op.f("ix_tracing_sessions_created_at"))

    op.drop_table("tracing_sessions")
    op.drop_table("spans")
    op.drop_table("nodes")
    op.drop_table("gateway_config_versions")
