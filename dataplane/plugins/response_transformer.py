"""response-transformer: change response headers and top-level JSON body fields (Kong's plugin).

Headers change in the header_filter phase (remove, rename, replace, add, append). A JSON body
(``application/json`` or ``+json``) is buffered until its last chunk, transformed, and sent
whole; other bodies stream through untouched. Values are strings unless ``json_types`` says
``number`` or ``boolean`` for the entry at the same position.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from dataplane.plugins.base import GatewayPlugin, PluginConfig, json_object, split_pair

if TYPE_CHECKING:
    from dataplane.exchange import Exchange

__all__ = ["PLUGIN", "ResponseTransformerConfig", "ResponseTransformerPlugin", "transform_json"]

log = logging.getLogger(__name__)

_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_JSON_TYPE = re.compile(r"^application/([a-z0-9.+-]*\+)?json\s*(;|$)", re.IGNORECASE)
_BUFFER = "response-transformer.buffer"


def _header(value: str) -> str:
    if not _HEADER_NAME.match(value):
        raise ValueError(f"{value!r} is not a valid header name")
    return value


def _pair(value: str) -> str:
    name, sep, _ = value.partition(":")
    if not name or not sep:
        raise ValueError(f"{value!r} must be 'name:value'")
    return value


def _header_pair(value: str) -> str:
    _header(_pair(value).partition(":")[0])
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"{value!r}: a header value must be Latin-1 text") from None
    return value


def _renamed_header(value: str) -> str:
    _header_pair(value)
    _header(value.partition(":")[2])
    return value


JsonType = Literal["boolean", "number", "string"]
HeaderName = Annotated[str, AfterValidator(_header)]
Pair = Annotated[str, AfterValidator(_pair)]
HeaderPair = Annotated[str, AfterValidator(_header_pair)]
RenamedHeader = Annotated[str, AfterValidator(_renamed_header)]


class _Part(PluginConfig):
    # Kong's field is "json", which would shadow pydantic's BaseModel.json.
    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )


class RemoveConfig(_Part):
    """Header names and JSON fields to remove."""

    headers: tuple[HeaderName, ...] = ()
    json_fields: tuple[str, ...] = Field(default=(), alias="json")


class RenameConfig(_Part):
    """``old:new`` pairs."""

    headers: tuple[RenamedHeader, ...] = ()
    json_fields: tuple[Pair, ...] = Field(default=(), alias="json")


class ValuesConfig(_Part):
    """``name:value`` pairs; ``json_types`` types the JSON values position by position."""

    headers: tuple[HeaderPair, ...] = ()
    json_fields: tuple[Pair, ...] = Field(default=(), alias="json")
    json_types: tuple[JsonType, ...] = ()

    @model_validator(mode="after")
    def _types_fit(self) -> Self:
        if len(self.json_types) > len(self.json_fields):
            raise ValueError("json_types has more entries than json")
        return self


class ResponseTransformerConfig(PluginConfig):
    """Kong's response-transformer schema."""

    remove: RemoveConfig = RemoveConfig()
    rename: RenameConfig = RenameConfig()
    replace: ValuesConfig = ValuesConfig()
    add: ValuesConfig = ValuesConfig()
    append: ValuesConfig = ValuesConfig()

    @property
    def transforms_json(self) -> bool:
        """Whether any JSON body transformation is configured."""
        parts = (self.remove, self.rename, self.replace, self.add, self.append)
        return any(part.json_fields for part in parts)


def _typed(value: str, json_type: JsonType | None) -> Any:
    if json_type == "number":
        try:
            number = float(value)
        except ValueError:
            return None
        return int(number) if number.is_integer() and "." not in value else number
    if json_type == "boolean":
        return value == "true"
    return value


def _typed_pairs(values: ValuesConfig) -> list[tuple[str, Any]]:
    types: list[JsonType | None] = [*values.json_types]
    types += [None] * (len(values.json_fields) - len(types))
    return [
        (name, _typed(value, json_type))
        for (name, value), json_type in zip(map(split_pair, values.json_fields), types, strict=True)
    ]


def transform_json(config: ResponseTransformerConfig, body: bytes) -> bytes | None:
    """The transformed JSON body; None when it is not a JSON object (left as is)."""
    document = json_object(body)
    if document is None:
        return None
    for name in config.remove.json_fields:
        document.pop(name, None)
    for old, new in map(split_pair, config.rename.json_fields):
        if old in document and new:
            document[new] = document.pop(old)
    for name, value in _typed_pairs(config.replace):
        if name in document and value is not None:
            document[name] = value
    for name, value in _typed_pairs(config.add):
        if name not in document and value is not None:
            document[name] = value
    for name, value in _typed_pairs(config.append):
        if value is None:
            continue
        current = document.get(name)
        if isinstance(current, list):
            current.append(value)
        elif current is None:
            document[name] = [value]
        else:
            document[name] = [current, value]
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


class ResponseTransformerPlugin(GatewayPlugin[ResponseTransformerConfig]):
    """Header changes in header_filter; JSON body changes in body_filter (buffered)."""

    name = "response-transformer"
    priority = 800
    config_model = ResponseTransformerConfig

    async def header_filter(self, exchange: Exchange) -> None:
        config = self.config
        headers = exchange.response_headers
        for name in config.remove.headers:
            headers.remove(name)
        for old, new in map(split_pair, config.rename.headers):
            headers.rename(old, new)
        for name, value in map(split_pair, config.replace.headers):
            if name in headers:
                headers.set(name, value)
        for name, value in map(split_pair, config.add.headers):
            if name not in headers:
                headers.set(name, value)
        for name, value in map(split_pair, config.append.headers):
            headers.add(name, value)
        if config.transforms_json and _JSON_TYPE.match(headers.get("content-type") or ""):
            headers.remove("content-length")
            exchange.plugin_data[_BUFFER] = bytearray()

    def body_filter(self, exchange: Exchange, chunk: bytes, last: bool) -> bytes:
        buffer: bytearray | None = exchange.plugin_data.get(_BUFFER)
        if buffer is None:
            return chunk
        buffer += chunk
        if not last:
            return b""
        body = bytes(buffer)
        del exchange.plugin_data[_BUFFER]
        transformed = transform_json(self.config, body)
        if transformed is None:
            log.warning("response-transformer: the response body is not a JSON object")
            return body
        return transformed


PLUGIN = ResponseTransformerPlugin
