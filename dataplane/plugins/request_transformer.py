"""request-transformer: change the request before it goes upstream (Kong's plugin).

Transformations run in Kong's order: URI, method, then for headers and the query string
remove, rename, replace, add, append. Entries are ``name`` (remove) or ``name:value``.
Kong's ``$(...)`` templates and body transformations are not supported: the schema rejects them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated

from pydantic import AfterValidator, Field

from dataplane.plugins.base import GatewayPlugin, LocalReply, PluginConfig

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


def _no_body(value: tuple[str, ...]) -> tuple[str, ...]:
    if value:
        raise ValueError(
            "transforming the request body is not supported (headers and querystring are)"
        )
    return value


Name = str
HeaderName = Annotated[str, AfterValidator(_header)]
Pair = Annotated[str, AfterValidator(_pair)]
HeaderPair = Annotated[str, AfterValidator(_header_pair)]
RenamedHeader = Annotated[str, AfterValidator(_renamed_header)]
Body = Annotated[tuple[str, ...], AfterValidator(_no_body)]


class RemoveConfig(PluginConfig):
    """Names to remove."""

    headers: tuple[HeaderName, ...] = ()
    querystring: tuple[Name, ...] = ()
    body: Body = ()


class RenameConfig(PluginConfig):
    """``old:new`` pairs."""

    headers: tuple[RenamedHeader, ...] = ()
    querystring: tuple[Pair, ...] = ()
    body: Body = ()


class ValuesConfig(PluginConfig):
    """``name:value`` pairs (replace, add, append)."""

    headers: tuple[HeaderPair, ...] = ()
    querystring: tuple[Pair, ...] = ()
    body: Body = ()


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


def _split(entry: str) -> tuple[str, str]:
    name, _, value = entry.partition(":")
    return name, value


class RequestTransformerPlugin(GatewayPlugin[RequestTransformerConfig]):
    """Rewrites the upstream path, method, headers and query string in the access phase."""

    name = "request-transformer"
    priority = 801
    config_model = RequestTransformerConfig

    async def access(self, exchange: Exchange) -> LocalReply | None:
        config = self.config
        if config.replace.uri is not None:
            exchange.upstream_path = config.replace.uri
        if config.http_method is not None:
            exchange.method = config.http_method
        self._headers(exchange)
        self._query(exchange)
        return None

    def _headers(self, exchange: Exchange) -> None:
        config = self.config
        headers = exchange.request_headers
        for name in config.remove.headers:
            headers.remove(name)
        for old, new in map(_split, config.rename.headers):
            headers.rename(old, new)
        for name, value in map(_split, config.replace.headers):
            if name in headers or name.lower() == "host":
                headers.set(name, value)
        for name, value in map(_split, config.add.headers):
            if name not in headers and name.lower() != "host":
                headers.set(name, value)
        for name, value in map(_split, config.append.headers):
            if name.lower() != "host":
                headers.add(name, value)

    def _query(self, exchange: Exchange) -> None:
        config = self.config
        if not (
            config.remove.querystring
            or config.rename.querystring
            or config.replace.querystring
            or config.add.querystring
            or config.append.querystring
        ):
            return
        args = exchange.query_args()
        removed = set(config.remove.querystring)
        args = [(name, value) for name, value in args if name not in removed]
        for old, new in map(_split, config.rename.querystring):
            args = [(new if name == old else name, value) for name, value in args]
        for key, replacement in map(_split, config.replace.querystring):
            first = next((i for i, (name, _) in enumerate(args) if name == key), None)
            if first is not None:  # every value of the name becomes the one replacement
                args = [arg for arg in args if arg[0] != key]
                args.insert(first, (key, replacement))
        present = {name for name, _ in args}
        for name, value in map(_split, config.add.querystring):
            if name not in present:
                args.append((name, value))
                present.add(name)
        for name, value in map(_split, config.append.querystring):
            args.append((name, value))
        exchange.set_query_args(args)


PLUGIN = RequestTransformerPlugin
