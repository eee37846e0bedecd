"""Bearer-token protection of the admin API (``ACTIVETRACE_ADMIN_TOKEN``)."""

from __future__ import annotations

import hmac

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from controlplane.errors import ApiError

__all__ = ["Unauthorized", "require_admin"]

_bearer = HTTPBearer(auto_error=False, description="ACTIVETRACE_ADMIN_TOKEN")


class Unauthorized(ApiError):
    """Missing or wrong token (401)."""

    status_code = 401
    headers = {"www-authenticate": "Bearer"}  # noqa: RUF012


async def require_admin(request: Request) -> None:
    """Allow the request when no admin token is configured or the bearer token matches."""
    token = request.app.state.control_plane.settings.admin_token
    if token is None:
        return
    credentials: HTTPAuthorizationCredentials | None = await _bearer(request)
    given = credentials.credentials if credentials is not None else ""
    # Constant-time comparison: the time taken must not reveal how much of the token matched.
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise Unauthorized("missing or wrong bearer token" if given else "missing bearer token")
