"""``/api/v1/config``: the whole gateway config, declaratively (YAML or JSON, like decK)."""

from __future__ import annotations

import json
from typing import Any

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from controlplane.api.deps import ControlPlaneDep, DbSession
from controlplane.errors import Invalid
from controlplane.schemas import ErrorBody
from controlplane.services import config as config_service
from dataplane.gateway_config import ConfigError, normalise_declarative

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/config", tags=["config"])

_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
MAX_CONFIG_BYTES = 16 << 20


def _parse(raw: bytes, content_type: str) -> dict[str, Any]:
    try:
        if any(t in content_type for t in _YAML_TYPES):
            document = yaml.safe_load(raw)
        else:
            document = json.loads(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise Invalid.at(
            ["body"], f"malformed YAML{where}: {getattr(exc, 'problem', exc)}"
        ) from None
    except ValueError as exc:
        raise Invalid.at(["body"], f"malformed JSON: {exc}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise Invalid.at(["body"], "the config must be a mapping with services, routes, ...")
    return document


def _export(body: dict[str, Any]) -> dict[str, Any]:
    """The stored config as a declarative document that ``PUT`` takes back unchanged.

    Stored entities refer to each other as ``service_id``/``route_id``; the declarative format
    (like decK's) says ``service``/``route``.
    """
    for route in body.get("routes", []):
        route["service"] = route.pop("service_id")
    for plugin in body.get("plugins", []):
        for key in ("service", "route"):
            value = plugin.pop(f"{key}_id", None)
            if value is not None:
                plugin[key] = value
    return {"_format_version": "1.0", **body}


@router.get("", responses={200: {"content": {"application/yaml": {}}}})
async def get_config(request: Request, db: DbSession) -> Response:
    """The current config (``Accept: application/yaml`` for YAML), with its version and hash."""
    current = await config_service.current_config(db)
    body = current.config.model_dump(mode="json")
    body.pop("version")
    document = _export(body)
    headers = {"x-config-version": str(current.version), "etag": f'"{current.hash}"'}
    if any(t in request.headers.get("accept", "") for t in _YAML_TYPES):
        text = yaml.safe_dump(document, sort_keys=False)
        return Response(text, media_type="application/yaml", headers=headers)
    return JSONResponse(document, headers=headers)


@router.put("", responses={409: {"model": ErrorBody}, 422: {"model": ErrorBody}})
async def put_config(request: Request, cp: ControlPlaneDep, db: DbSession) -> JSONResponse:
    """Replace the whole config atomically: validated as a whole, then pushed to every node."""
    raw = await request.body()
    if len(raw) > MAX_CONFIG_BYTES:
        raise Invalid.at(["body"], f"config larger than {MAX_CONFIG_BYTES} bytes")
    document = _parse(raw, request.headers.get("content-type", ""))
    try:
        normalised = normalise_declarative(document)
    except ConfigError as exc:
        raise Invalid.at(["body", *exc.loc], exc.message) from None
    config = config_service.validate_config(normalised, loc_prefix=("body",))
    current = await config_service.current_config(db)
    if config.content_hash() == current.hash:
        saved = current
    else:
        saved = await config_service.save_config(
            db,
            cp.registry,
            config,
            change="declarative config",
            now=cp.clock.now(),
            expected_version=current.version,
        )
    return JSONResponse(
        {"version": saved.version, "hash": saved.hash, "changed": saved is not current}
    )
