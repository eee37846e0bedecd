"""request-transformer: change the request before it goes upstream (Kong's plugin).

Transformations run in Kong's order: URI, method, headers, body, query string; within each,
remove, rename, replace, add, append. Entries are ``name`` (remove) or ``name:value``.

Bodies are changed when they are ``application/x-www-form-urlencoded`` or ``application/json``
(a top-level object) and were buffered by the proxy (a ``Content-Length`` up to 1 MiB, or no
body at all: ``add`` and ``append`` then create one, as Kong does). A body that streams
(chunked or larger), a JSON body that is not an object, and other content types (multipart
included) go upstream unchanged. Changing the method to GET, HEAD or TRACE moves a form body's
parameters into the query string, as Kong does. Kong's ``$(...)`` templates are refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Final
from urllib.parse import urlencode

from pydantic import AfterValidator, Field

from dataplane.exchange import add_value, form_pairs
from dataplane.plugins.base import (
    GatewayPlugin,
    LocalReply,
    PluginConfig,
    json_object,
    split_pair,
)

if TYPE_CHECKING:
    from dataplane.exchange import Exchange

__all__ = ["PLUGIN", "RequestTransformerConfig", "RequestTransformerPlugin"]

_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


def _no_template(value: str) -> str:
    if "$(" in value:
        raise ValueError(f"{value!r}: templates ($(...)) are not supported")
    return value


def _header(value: str) -> str:
    name = value.partition(":")[0]
    if not _HEADER_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid header name")
    return value


def _pair(value: str) -> str:
    name, sep, _ = value.partition(":")
    if not name or not sep:
        raise ValueError(f"{value!r} must be 'name:value'")
    return _no_template(value)


def _header_pair(value: str) -> str:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"{value!r}: a header value must be Latin-1 text") from None
    return _header(_pair(value))


def _renamed_header(value: str) -> str:
    _header(_header_pair(value).partition(":")[2])
    return value


Name = str
HeaderName = Annotated[str, AfterValidator(_header)]
Pair = Annotated[str, AfterValidator(_pair)]
HeaderPair = Annotated[str, AfterValidator(_header_pair)]
RenamedHeader = Annotated[str, AfterValidator(_renamed_header)]
BodyName = Annotated[str, AfterValidator(_no_template)]


class RemoveConfig(PluginConfig):
    """Names to remove."""

    headers: tuple[HeaderName, ...] = ()
    querystring: tuple[Name, ...] = ()
    body: tuple[BodyName, ...] = ()


class RenameConfig(PluginConfig):
    """``old:new`` pairs."""

    headers: tuple[RenamedHeader, ...] = ()
    querystring: tuple[Pair, ...] = ()
    body: tuple[Pair, ...] = ()


class ValuesConfig(PluginConfig):
    """``name:value`` pairs (replace, add, append)."""

    headers: tuple[HeaderPair, ...] = ()
    querystring: tuple[Pair, ...] = ()
    body: tuple[Pair, ...] = ()


class ReplaceConfig(ValuesConfig):
    """Replace also takes the upstream ``uri`` (path)."""

    uri: Annotated[str, AfterValidator(_no_template)] | None = None


class RequestTransformerConfig(PluginConfig):
    """Kong's request-transformer schema."""

    http_method: str | None = Field(default=None, pattern=r"^[A-Z]+$")
    remove: RemoveConfig = RemoveConfig()
    rename: RenameConfig = RenameConfig()
    replace: ReplaceConfig = ReplaceConfig()
    add: ValuesConfig = ValuesConfig()
    append: ValuesConfig = ValuesConfig()


class RequestTransformerPlugin(GatewayPlugin[RequestTransformerConfig]):
    """Rewrites the upstream path, method, headers, body and query string (access phase)."""

    name = "request-transformer"
    priority = 801
    config_model = RequestTransformerConfig

    async def access(self, exchange: Exchange) -> LocalReply | None:
        config = self.config
        if config.replace.uri is not None:
            exchange.upstream_path = config.replace.uri
        if config.http_method is not None:
            exchange.method = config.http_method
            if config.http_method in _BODYLESS_METHODS:
                _form_into_query(exchange)
        self._headers(exchange)
        self._body(exchange)
        self._query(exchange)
        return None

    def _headers(self, exchange: Exchange) -> None:
        config = self.config
        headers = exchange.request_headers
        for name in config.remove.headers:
            headers.remove(name)
        for old, new in map(split_pair, config.rename.headers):
            headers.rename(old, new)
        for name, value in map(split_pair, config.replace.headers):
            if name in headers or name.lower() == "host":
                headers.set(name, value)
        for name, value in map(split_pair, config.add.headers):
            if name not in headers and name.lower() != "host":
                headers.set(name, value)
        for name, value in map(split_pair, config.append.headers):
            if name.lower() != "host":
                headers.add(name, value)

    def _query(self, exchange: Exchange) -> None:
        rules = _rules(self.config, "querystring")
        if any(rules):
            exchange.set_query_args(_transform_pairs(exchange.query_args(), *rules))

    def _body(self, exchange: Exchange) -> None:
        rules = _rules(self.config, "body")
        if not any(rules):
            return
        kind = _body_kind(exchange.request_headers.get("content-type"))
        body = exchange.request_body
        streamed = body is None and (
            "content-length" in exchange.request_headers
            or "transfer-encoding" in exchange.request_headers
        )
        if kind is None or streamed:
            return  # not a body this plugin can change (see the module docstring)
        body = body or b""
        if kind == "form":
            args = form_pairs(body)
            if not body:  # like Kong: remove, rename and replace need a body to act on
                rules = ((), (), (), rules[3], rules[4])
            changed = urlencode(_transform_pairs(args, *rules)).encode("latin-1")
        else:
            changed_json = _transform_json(body, *rules)
            if changed_json is None:
                return
            changed = changed_json
        if changed != body:
            exchange.request_body = changed


_BODYLESS_METHODS: Final = frozenset({"GET", "HEAD", "TRACE"})
Rules = tuple[Sequence[str], Sequence[str], Sequence[str], Sequence[str], Sequence[str]]


def _rules(config: RequestTransformerConfig, part: str) -> Rules:
    """The remove, rename, replace, add and append entries for ``part`` (querystring, body)."""
    return (
        getattr(config.remove, part),
        getattr(config.rename, part),
        getattr(config.replace, part),
        getattr(config.add, part),
        getattr(config.append, part),
    )


def _body_kind(content_type: str | None) -> str | None:
    """``form``, ``json`` or None (a body this plugin leaves alone)."""
    if not content_type:
        return None
    media = content_type.partition(";")[0].strip().lower()
    if media == "application/x-www-form-urlencoded":
        return "form"
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return "json"
    return None


def _form_into_query(exchange: Exchange) -> None:
    """A form body's parameters join the query string (the method no longer carries a body)."""
    body = exchange.request_body
    if not body or _body_kind(exchange.request_headers.get("content-type")) != "form":
        return
    params = form_pairs(body)
    if params:
        exchange.set_query_args(exchange.query_args() + params)


def _transform_pairs(
    args: list[tuple[str, str]],
    remove: Sequence[str],
    rename: Sequence[str],
    replace: Sequence[str],
    add: Sequence[str],
    append: Sequence[str],
) -> list[tuple[str, str]]:
    """Kong's order on multi-valued ``(name, value)`` pairs (query string, form body)."""
    removed = set(remove)
    args = [(name, value) for name, value in args if name not in removed]
    for old, new in map(split_pair, rename):
        args = [(new if name == old else name, value) for name, value in args]
    for key, replacement in map(split_pair, replace):
        first = next((i for i, (name, _) in enumerate(args) if name == key), None)
        if first is not None:  # every value of the name becomes the one replacement
            args = [arg for arg in args if arg[0] != key]
            args.insert(first, (key, replacement))
    present = {name for name, _ in args}
    for name, value in map(split_pair, add):
        if name not in present:
            args.append((name, value))
            present.add(name)
    for name, value in map(split_pair, append):
        args.append((name, value))
    return args


def _transform_json(
    body: bytes,
    remove: Sequence[str],
    rename: Sequence[str],
    replace: Sequence[str],
    add: Sequence[str],
    append: Sequence[str],
) -> bytes | None:
    """The JSON object body transformed; None when it is not an object or nothing changed
    (the body then goes upstream byte for byte).

    Values from the config are strings; ``append`` to an existing key makes (or extends) an
    array, as Kong does. Without a body only ``add`` and ``append`` apply (they create one).
    """
    if body:
        document = json_object(body)
        if document is None:
            return None
        # Only append changes values in place (a list grows): without it a shallow copy is
        # enough to tell whether anything changed.
        original = None if append else dict(document)
        for name in remove:
            document.pop(name, None)
        for old, new in map(split_pair, rename):
            if old in document:
                document[new] = document.pop(old)
        for name, value in map(split_pair, replace):
            if name in document:
                document[name] = value
    else:
        if not add and not append:
            return None
        document, original = {}, None
    for name, value in map(split_pair, add):
        if name not in document:
            document[name] = value
    for name, value in map(split_pair, append):
        add_value(document, name, value)
    if original is not None and document == original:
        return None
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


PLUGIN = RequestTransformerPlugin
