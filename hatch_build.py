"""Hatch build hook: compiles the C span objects and encoder (``dataplane/tracing/_wire.c``).

Runs for wheels (``pip install .``, the Docker image) and editable installs (``pip install
-e .``, ``scripts/bootstrap``). The extension is built in place next to its source, so an
editable install imports it from the tree, and a wheel carries it as an artifact. Without a
C compiler the build fails loudly unless ``ACTIVETRACE_PURE_PYTHON=1`` is set: the node then
builds spans in Python (``spans.PySpanBase``, about 3x slower) and encodes them in Python
(``dataplane/tracing/wire.py``, about 4x slower).
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.config import BuilderConfig
from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("dataplane/tracing/_wire.c")


class WireExtensionHook(BuildHookInterface[BuilderConfig]):
    """Builds ``dataplane.tracing._wire`` with setuptools' ``build_ext``."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Compile the extension in place and declare it (and a platform tag) to hatch."""
        if self.target_name != "wheel":
            return
        if os.environ.get("ACTIVETRACE_PURE_PYTHON") == "1":
            return
        from setuptools import Distribution, Extension  # type: ignore[import-untyped]
        from setuptools.command.build_ext import build_ext  # type: ignore[import-untyped]

        root = Path(self.root)
        extension = Extension(
            "dataplane.tracing._wire",
            [str(SOURCE)],
            extra_compile_args=["-O2"],
        )
        distribution = Distribution({"name": "activetrace-wire", "ext_modules": [extension]})
        command = build_ext(distribution)
        command.inplace = True
        command.build_temp = str(root / "build" / "temp")
        command.ensure_finalized()
        cwd = Path.cwd()
        os.chdir(root)
        try:
            command.run()
        finally:
            os.chdir(cwd)
        built = SOURCE.with_name("_wire" + str(sysconfig.get_config_var("EXT_SUFFIX")))
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        build_data["artifacts"].append(str(built))
