"""Pydantic schemas of the HTTP API: ``XCreate`` for input, ``XPublic`` for output."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "EntityList",
    "ErrorBody",
    "ErrorDetail",
    "ExpressionValidate",
    "ExpressionValidation",
    "NodePublic",
    "Page",
    "RuleErrorPublic",
    "ScopePublic",
    "SessionScope",
    "SessionTargetPublic",
    "SpanEventPublic",
    "SpanPublic",
    "SpanStatusPublic",
    "TraceDetail",
    "TraceLogLine",
    "TracePublic",
    "TracingSessionCreate",
    "TracingSessionPublic",
]

SessionStatus = Literal["pending", "active", "completed", "stopped", "expired"]
TargetState = Literal["pending", "active", "completed", "expired", "stopped", "failed"]


class ErrorDetail(BaseModel):
    """One problem with a request: where (``loc``) and what (``message``)."""

    loc: list[str | int]
    message: str
    start: int | None = None
    end: int | None = None


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer of the API."""

    message: str
    errors: list[ErrorDetail] = []


class SessionScope(BaseModel):
    """What a session traces: one service (all its routes), one route, or everything."""

    model_config = ConfigDict(extra="forbid")

    service: str | None = Field(default=None, description="Service ID or name")
    route: str | None = Field(default=None, description="Route ID or name")

    @model_validator(mode="after")
    def _one(self) -> SessionScope:
        if self.service is not None and self.route is not None:
            raise ValueError("scope takes either 'service' or 'route', not both")
        return self


class TracingSessionCreate(BaseModel):
    """``POST /api/v1/tracing-sessions``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=255)
    targets: list[str] = Field(min_length=1, max_length=1000, description="Node IDs")
    scope: SessionScope = SessionScope()
    sampling_rule: str | None = Field(
        default=None, max_length=4096, description="Expression; null traces every request"
    )
    max_samples: int = Field(default=100, ge=1, le=10000, description="Per node")
    duration_secs: int = Field(default=300, ge=1, le=86400)
    capture: list[Literal["headers", "body"]] = []
    body_max_bytes: int = Field(default=4096, ge=0, le=65536)

    @field_validator("targets")
    @classmethod
    def _unique_targets(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("targets must not repeat a node")
        return value

    @field_validator("sampling_rule")
    @classmethod
    def _blank_rule_is_none(cls, value: str | None) -> str | None:
        return value if value is None or value.strip() else None


class SessionTargetPublic(BaseModel):
    """One targeted node's progress."""

    node_id: str
    state: TargetState
    samples: int
    message: str = ""


class ScopePublic(BaseModel):
    """The resolved scope of a session."""

    kind: Literal["all", "service", "route"]
    id: str | None = None
    name: str | None = None


class TracingSessionPublic(BaseModel):
    """A tracing session as the API shows it."""

    id: str
    name: str
    status: SessionStatus
    scope: ScopePublic
    sampling_rule: str | None
    tail: bool
    max_samples: int
    duration_secs: int
    capture: list[str]
    body_max_bytes: int
    samples: int
    targets: list[SessionTargetPublic]
    created_at: datetime
    started_at: datetime | None
    ends_at: datetime
    ended_at: datetime | None
    expires_at: datetime


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """A page of a list with an opaque cursor for the next one."""

    items: list[T]
    next_cursor: str | None = None


class NodePublic(BaseModel):
    """A data plane node."""

    id: str
    hostname: str
    version: str
    labels: dict[str, str]
    status: Literal["connected", "disconnected"]
    connected_at: datetime | None
    last_seen: datetime | None
    config_hash: str
    config_version: int
    requests: int
    traced: int
    spans_dropped: int
    active_sessions: list[str] = []


class TracePublic(BaseModel):
    """One row of a session's trace list."""

    trace_id: str
    session_id: str
    node_id: str
    start_time: datetime
    start_time_unix_nano: int
    duration_ms: float
    method: str
    path: str
    status_code: int | None
    service: str | None
    route: str | None
    span_count: int
    error: bool


class SpanStatusPublic(BaseModel):
    """OTel span status."""

    code: Literal["UNSET", "OK", "ERROR"]
    message: str = ""


class SpanEventPublic(BaseModel):
    """A span event (e.g. an exception)."""

    name: str
    time_unix_nano: int
    attributes: dict[str, Any] = {}


class SpanPublic(BaseModel):
    """One span of a trace."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: Literal["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"]
    start_time_unix_nano: int
    end_time_unix_nano: int
    duration_ms: float
    status: SpanStatusPublic
    service_name: str
    node_id: str | None
    attributes: dict[str, Any]
    events: list[SpanEventPublic]


class TraceDetail(BaseModel):
    """``GET /api/v1/traces/{trace_id}``: the spans plus the session(s) and node."""

    trace_id: str
    session_id: str
    session_ids: list[str]
    node_id: str
    spans: list[SpanPublic]


class TraceLogLine(BaseModel):
    """A log line a node wrote while serving a traced request."""

    time_unix_nano: int
    level: str
    logger: str
    message: str
    node_id: str | None
    span_id: str


class ExpressionValidate(BaseModel):
    """``POST /api/v1/expressions/validate``."""

    model_config = ConfigDict(extra="forbid")

    expression: str = Field(max_length=4096)


class RuleErrorPublic(BaseModel):
    """A problem in a rule, with its character offsets (end exclusive)."""

    message: str
    start: int
    end: int


class ExpressionValidation(BaseModel):
    """The result of validating a rule."""

    valid: bool
    errors: list[RuleErrorPublic]
    fields: list[str]
    tail: bool


class EntityList(BaseModel):
    """A page of gateway config entities in Kong's shape; ``next`` is the next page's path."""

    data: list[dict[str, Any]]
    next: str | None = None
