"""cors: Cross-Origin Resource Sharing headers, and answers to preflight requests (Kong's plugin).

Origins are ``*``, exact origins (``https://example.com``, default ports ignored) or regexes
(anything with characters beyond letters, digits and ``.:/-``), matched against the whole
``Origin`` (or its host, when the regex has no ``:``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Final, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from dataplane.plugins.base import GatewayPlugin, LocalReply, PluginConfig

if TYPE_CHECKING:
    from dataplane.exchange import Exchange
    from dataplane.headers import HeaderList
    from dataplane.plugins.host import PluginHost

__all__ = ["PLUGIN", "CorsConfig", "CorsPlugin", "OriginMatcher"]

Method = Literal["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS", "TRACE", "CONNECT"]
METHODS: Final[tuple[Method, ...]] = (
    "GET",
    "HEAD",
    "PUT",
    "PATCH",
    "POST",
    "DELETE",
    "OPTIONS",
    "TRACE",
    "CONNECT",
)
_PLAIN = re.compile(r"^[A-Za-z0-9.:/-]+$")
_PREFLIGHT_HANDLED = "cors.preflight"


def _origin(value: str) -> str:
    if value != "*" and not _PLAIN.match(value):
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"{value!r} is not a valid regex: {exc}") from None
    return value


class CorsConfig(PluginConfig):
    """Kong's cors schema."""

    origins: tuple[Annotated[str, AfterValidator(_origin)], ...] | None = None
    headers: tuple[str, ...] | None = None
    exposed_headers: tuple[str, ...] | None = None
    methods: tuple[Method, ...] = METHODS
    max_age: int | None = Field(default=None, ge=0)
    credentials: bool = False
    private_network: bool = False
    preflight_continue: bool = False
    allow_origin_absent: bool = True


@dataclass(frozen=True, slots=True)
class _Allowed:
    exact: str | None = None  # a normalised origin
    regex: re.Pattern[str] | None = None
    by_host: bool = False  # the regex matches the host only


def normalise_origin(origin: str) -> tuple[str, str]:
    """``(scheme://host[:port], host)`` with default ports dropped; the text itself if no host."""
    parts = urlsplit(origin)
    host = parts.hostname
    if not host:
        return origin, origin
    try:
        port = parts.port
    except ValueError:
        port = None
    if (parts.scheme, port) in (("http", 80), ("https", 443)):
        port = None
    scheme = f"{parts.scheme}://" if parts.scheme else ""
    return f"{scheme}{host}{f':{port}' if port else ''}", host


class OriginMatcher:
    """Decides ``Access-Control-Allow-Origin`` for a request's ``Origin``, compiled once."""

    def __init__(self, origins: tuple[str, ...] | None) -> None:
        origins = origins or ()
        self.allow_all = not origins or "*" in origins
        # One plain origin is answered as is, whatever the request's Origin (Kong).
        self.fixed = origins[0] if len(origins) == 1 and _PLAIN.match(origins[0]) else None
        self._allowed: list[_Allowed] = []
        for entry in origins:
            if _PLAIN.match(entry):
                self._allowed.append(_Allowed(exact=normalise_origin(entry)[0]))
            else:
                pattern = entry.removeprefix("^")
                pattern = pattern if pattern.endswith("$") else f"{pattern}$"
                self._allowed.append(_Allowed(regex=re.compile(pattern), by_host=":" not in entry))

    def allowed_origin(self, origin: str | None) -> str | None:
        """The value to send back, or None (not allowed); ``allow_all`` is the caller's case."""
        if self.fixed is not None:
            return self.fixed
        if not origin:
            return None
        domain, host = normalise_origin(origin)
        for allowed in self._allowed:
            if allowed.regex is not None:
                if allowed.regex.match(host if allowed.by_host else domain):
                    return domain
            elif allowed.exact == domain:
                return domain
        return None


class CorsPlugin(GatewayPlugin[CorsConfig]):
    """Answers preflights in the access phase (200); adds CORS headers to proxied responses."""

    name = "cors"
    priority = 2000
    config_model = CorsConfig

    def __init__(self, config: CorsConfig, *, plugin_id: str, host: PluginHost) -> None:
        super().__init__(config, plugin_id=plugin_id, host=host)
        self._origins = OriginMatcher(config.origins)
        self._methods = ",".join(config.methods)

    async def access(self, exchange: Exchange) -> LocalReply | None:
        headers = exchange.request_headers
        origin = headers.get("origin")
        if (
            exchange.method != "OPTIONS"
            or not origin
            or "access-control-request-method" not in headers
        ):
            return None
        exchange.plugin_data[_PREFLIGHT_HANDLED] = True  # no CORS headers on the way back
        if self.config.preflight_continue:
            return None
        out: list[tuple[str, str | None]] = []
        self._origin_headers(out, origin)
        config = self.config
        if config.headers:
            out.append(("access-control-allow-headers", ",".join(config.headers)))
        else:
            requested = headers.get("access-control-request-headers")
            if requested:
                out.append(("access-control-allow-headers", requested))
        out.append(("access-control-allow-methods", self._methods))
        if config.max_age is not None:
            out.append(("access-control-max-age", str(config.max_age)))
        if (
            config.private_network
            and headers.get("access-control-request-private-network") == "true"
        ):
            out.append(("access-control-allow-private-network", "true"))
        answer = tuple((name, value) for name, value in out if value is not None)
        return LocalReply(200, b"", answer, reason="preflight")

    async def header_filter(self, exchange: Exchange) -> None:
        if exchange.plugin_data.get(_PREFLIGHT_HANDLED):
            return
        origin = exchange.request_headers.get("origin")
        if not origin and not self.config.allow_origin_absent:
            return
        out: list[tuple[str, str | None]] = []
        self._origin_headers(out, origin)
        if self.config.exposed_headers:
            out.append(("access-control-expose-headers", ",".join(self.config.exposed_headers)))
        _apply(exchange.response_headers, out)

    def _origin_headers(self, out: list[tuple[str, str | None]], origin: str | None) -> None:
        """``Access-Control-Allow-Origin`` (None: remove it), ``Vary``, ``-Allow-Credentials``."""
        matcher = self._origins
        credentials = self.config.credentials
        if matcher.allow_all:
            if credentials and origin:  # a credentialed response cannot allow "*"
                out.append(("vary", "Origin"))
                out.append(("access-control-allow-origin", origin))
                out.append(("access-control-allow-credentials", "true"))
            else:
                out.append(("access-control-allow-origin", "*"))
            return
        out.append(("vary", "Origin"))
        out.append(("access-control-allow-origin", matcher.allowed_origin(origin)))
        if credentials:
            out.append(("access-control-allow-credentials", "true"))


def _apply(headers: HeaderList, out: list[tuple[str, str | None]]) -> None:
    for name, value in out:
        if value is None:
            headers.remove(name)
        elif name == "vary":
            headers.add(name, value)
        else:
            headers.set(name, value)


PLUGIN = CorsPlugin
