"""key-auth: authenticate consumers by an API key in a header, the query or the body (Kong's).

Keys are the ``keyauth_credentials`` of the config's consumers (see
:class:`~dataplane.plugins.host.ConsumerDirectory`). Every name the plugin reads a key from is
added to the exchange's ``redact`` set, so traces and logs never show a key.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Annotated, Self

from pydantic import Field, model_validator

from dataplane.exchange import form_pairs
from dataplane.plugins.base import GatewayPlugin, LocalReply, PluginConfig

if TYPE_CHECKING:
    from dataplane.exchange import Exchange
    from dataplane.gateway_config import Consumer
    from dataplane.plugins.host import PluginHost

__all__ = ["PLUGIN", "KeyAuthConfig", "KeyAuthPlugin"]

log = logging.getLogger(__name__)

KeyName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]
CONSUMER_HEADERS = (
    "x-consumer-id",
    "x-consumer-custom-id",
    "x-consumer-username",
    "x-credential-identifier",
    "x-anonymous-consumer",
)
_CONSUMER_KEYS = frozenset(name.encode() for name in CONSUMER_HEADERS)


class KeyAuthConfig(PluginConfig):
    """Kong's key-auth schema."""

    key_names: tuple[KeyName, ...] = Field(default=("apikey",), min_length=1)
    hide_credentials: bool = False
    anonymous: str | None = None
    key_in_header: bool = True
    key_in_query: bool = True
    key_in_body: bool = False
    run_on_preflight: bool = True
    realm: str | None = None

    @model_validator(mode="after")
    def _body_keys_stay(self) -> Self:
        if self.key_in_body and self.hide_credentials:
            # The request body is forwarded as received, so a key in it cannot be removed.
            raise ValueError("hide_credentials cannot be combined with key_in_body")
        return self


class _Rejected(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class KeyAuthPlugin(GatewayPlugin[KeyAuthConfig]):
    """Sets ``exchange.consumer`` and the ``X-Consumer-*`` headers, or answers 401."""

    name = "key-auth"
    priority = 1250
    config_model = KeyAuthConfig

    def __init__(self, config: KeyAuthConfig, *, plugin_id: str, host: PluginHost) -> None:
        super().__init__(config, plugin_id=plugin_id, host=host)
        # Each key name with the header name as a HeaderList stores it (lower-case bytes).
        self._names = tuple((name, name.lower().encode("latin-1")) for name in config.key_names)
        # API key -> (consumer, its X-Consumer-* headers): built once per credential (only
        # keys that were found are kept, so at most one entry per configured credential).
        self._headers: dict[str, tuple[Consumer, list[tuple[bytes, bytes]]]] = {}
        self._redacted = frozenset(
            {*config.key_names, *(name.lower() for name in config.key_names)}
        )
        realm = config.realm
        self._challenge = f'Key realm="{realm}"' if realm else "Key"

    async def access(self, exchange: Exchange) -> LocalReply | None:
        exchange.redact.update(self._redacted)
        if not self.config.run_on_preflight and exchange.method == "OPTIONS":
            return None
        if self.config.anonymous is not None:
            # Logical OR with other auth plugins: done if one already authenticated.
            if exchange.credential_id is not None:
                return None
            try:
                self._authenticate(exchange)
            except _Rejected:
                return self._anonymous(exchange, self.config.anonymous)
            return None
        try:
            self._authenticate(exchange)
        except _Rejected as rejected:
            return LocalReply.json(
                401,
                {"message": rejected.message, "request_id": exchange.request_id},
                (("www-authenticate", self._challenge),),
                reason=rejected.message,
            )
        return None

    def _authenticate(self, exchange: Exchange) -> None:
        key = self._find_key(exchange)
        if not key:
            raise _Rejected("No API key found in request")
        found = self.host.consumers.by_key(key)
        if found is None:
            raise _Rejected("Invalid authentication credentials")
        consumer, credential_id = found
        cached = self._headers.get(key)
        if cached is None or cached[0] is not consumer:
            cached = self._headers[key] = (consumer, _consumer_headers(consumer, credential_id))
        _set_consumer(exchange, consumer, credential_id, cached[1])

    def _find_key(self, exchange: Exchange) -> str | None:
        """The first key in header, query, then body, per name in order (Kong's search)."""
        config = self.config
        query: list[tuple[str, str]] | None = None  # parsed when first needed
        body: dict[str, list[str]] | None = None
        raw = exchange.request_headers.raw
        for name, header in self._names:
            values: list[str] = []
            if config.key_in_header:
                for key, value in raw:  # a loop: cheaper than a comprehension for ~10 headers
                    if key == header:
                        values.append(value.decode("latin-1"))
            if not values and config.key_in_query:
                if query is None:
                    query = exchange.query_args()
                values = [value for arg, value in query if arg == name]
            if not values and config.key_in_body:
                if body is None:
                    body = _body_fields(exchange)
                values = body.get(name, [])
            if len(values) > 1:
                raise _Rejected("Duplicate API key found")
            if values:
                if config.hide_credentials:
                    exchange.request_headers.remove(name)
                    if config.key_in_query:
                        if query is None:
                            query = exchange.query_args()
                        if any(arg == name for arg, _ in query):
                            exchange.set_query_args([(a, v) for a, v in query if a != name])
                return values[0]
        return None

    def _anonymous(self, exchange: Exchange, ref: str) -> LocalReply | None:
        consumer = self.host.consumers.find(ref)
        if consumer is None:
            message = f"anonymous consumer {ref} is configured but doesn't exist"
            log.error(message)
            return LocalReply.json(
                500, {"message": message, "request_id": exchange.request_id}, reason=message
            )
        _set_consumer(exchange, consumer, None, _consumer_headers(consumer, None))
        return None


def _set_consumer(
    exchange: Exchange,
    consumer: Consumer,
    credential_id: str | None,
    headers: list[tuple[bytes, bytes]],
) -> None:
    """Authenticate the exchange and tell the upstream who called with ``headers`` (from
    :func:`_consumer_headers`; a client's own are removed, so they cannot be spoofed)."""
    exchange.consumer = consumer
    exchange.credential_id = credential_id
    request = exchange.request_headers
    request.remove_raw(_CONSUMER_KEYS)
    request.raw += headers


def _consumer_headers(consumer: Consumer, credential_id: str | None) -> list[tuple[bytes, bytes]]:
    """The ``X-Consumer-*`` headers for ``consumer`` authenticated by ``credential_id``."""
    pairs = [(b"x-consumer-id", consumer.id.encode("latin-1"))]
    if consumer.custom_id is not None:
        pairs.append((b"x-consumer-custom-id", consumer.custom_id.encode("latin-1")))
    pairs.append((b"x-consumer-username", consumer.username.encode("latin-1")))
    if credential_id is not None:
        pairs.append((b"x-credential-identifier", credential_id.encode("latin-1")))
    else:
        pairs.append((b"x-anonymous-consumer", b"true"))
    return pairs


def _body_fields(exchange: Exchange) -> dict[str, list[str]]:
    """String fields of a buffered JSON or form body (a streamed body is not searched)."""
    body = exchange.request_body
    if not body:
        return {}
    content_type = (exchange.request_headers.get("content-type") or "").lower()
    fields: dict[str, list[str]] = {}
    if "application/json" in content_type:
        try:
            parsed = json.loads(body)
        except ValueError:
            return {}
        if isinstance(parsed, dict):
            for name, value in parsed.items():
                if isinstance(value, str):
                    fields[name] = [value]
                elif isinstance(value, list):
                    fields[name] = [str(v) for v in value]
    elif "application/x-www-form-urlencoded" in content_type:
        for name, value in form_pairs(body):
            fields.setdefault(name, []).append(value)
    return fields


PLUGIN = KeyAuthPlugin
