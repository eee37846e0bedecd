"""The traced request the current task serves, for logs: JSON lines carry its trace and span
IDs, and its log lines are kept as ``log`` events on its root span (shown in the viewer).

Only traced requests set the context, so untraced requests pay nothing.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dataplane.tracing.recorder import RequestTrace

__all__ = ["CURRENT_TRACE", "TraceLogCapture"]

CURRENT_TRACE: ContextVar[RequestTrace | None] = ContextVar("activetrace_trace", default=None)
MAX_LOG_LINES = 100


class TraceLogCapture(logging.Handler):
    """Keeps log records emitted while serving a traced request on that request's trace."""

    def emit(self, record: logging.LogRecord) -> None:
        trace = CURRENT_TRACE.get()
        if trace is None or len(trace.logs) >= MAX_LOG_LINES:
            return
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break the request
            message = str(record.msg)
        if record.exc_info and record.exc_info[1] is not None:
            message = f"{message}: {record.exc_info[1]!r}"
        trace.logs.append((int(record.created * 1e9), record.levelname, record.name, message))
