"""The last config a node received, on disk, so it can start and proxy without the CP."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from pydantic import ValidationError

from dataplane.gateway_config import ConfigError, GatewayConfig

__all__ = ["load_cached_config", "save_cached_config"]

log = logging.getLogger(__name__)


def save_cached_config(path: Path, config: GatewayConfig) -> None:
    """Write atomically (temp file + rename), so a crash never leaves a torn cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(config.to_json())
    os.replace(tmp, path)


def load_cached_config(path: Path) -> GatewayConfig | None:
    """The cached config, or None when there is none or it is unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot read config cache %s: %s", path, exc)
        return None
    try:
        return GatewayConfig.load(json.loads(raw))
    except (ValueError, ValidationError, ConfigError) as exc:
        log.warning("ignoring invalid config cache %s: %s", path, exc)
        return None
