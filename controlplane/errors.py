"""API errors: raised by services, rendered by the app as ``{"message", "errors"}``."""

from __future__ import annotations

from controlplane.schemas import ErrorDetail

__all__ = ["ApiError", "Conflict", "Invalid", "NotFound", "Unavailable"]


class ApiError(Exception):
    """An error with an HTTP status and a body that says what and where."""

    status_code = 400
    headers: dict[str, str] = {}  # noqa: RUF012 - read-only per class

    def __init__(self, message: str, errors: list[ErrorDetail] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


class NotFound(ApiError):
    """The thing asked for does not exist (404)."""

    status_code = 404


class Conflict(ApiError):
    """The request conflicts with the current state (409)."""

    status_code = 409


class Invalid(ApiError):
    """The request is well-formed JSON but its content is not acceptable (422)."""

    status_code = 422

    @classmethod
    def at(cls, loc: list[str | int], message: str, **position: int) -> Invalid:
        """One error at ``loc`` (optionally with start/end character offsets)."""
        return cls(message, [ErrorDetail(loc=loc, message=message, **position)])


class Unavailable(ApiError):
    """The control plane cannot serve this now (503); retry later."""

    status_code = 503
    headers = {"retry-after": "2"}  # noqa: RUF012
