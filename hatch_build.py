"""Hatch build hook: compiles the C extensions: the span objects and encoder
(``dataplane/tracing/_wire.c``), HTTP/1.1 header serialisation (``dataplane/_http1.c``) and
the control plane's span batch reader (``controlplane/otlp/_rows.c``).

Runs for wheels (``pip install .``, the Docker image) and editable installs (``pip install
-e .``, ``scripts/bootstrap``). The extensions are built in place next to their sources, so an
editable install imports them from the tree, and a wheel carries them as artifacts. Without a
C compiler the build fails loudly unless ``ACTIVETRACE_PURE_PYTHON=1`` is set: the node then
builds spans in Python (``spans.PySpan``, about 3x slower), encodes them in Python
(``dataplane/tracing/wire.py``, about 4x slower) and writes header blocks in Python
(``dataplane/http1.py``, about 5x slower); the control plane parses span batches with
protobuf (``controlplane/otlp/convert.span_rows``, about 4.5x slower).
"""

from __future__ import annotations

import os
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.config import BuilderConfig
from hatchling.builders.hooks.plugin.interface import BuildHookInterface

EXTENSIONS = {
    "dataplane.tracing._wire": Path("dataplane/tracing/_wire.c"),
    "dataplane._http1": Path("dataplane/_http1.c"),
    "controlplane.otlp._rows": Path("controlplane/otlp/_rows.c"),
}


class ExtensionsHook(BuildHookInterface[BuilderConfig]):
    """Builds the extensions with setuptools' ``build_ext``."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Compile the extensions in place and declare them (and a platform tag) to hatch."""
        if self.target_name != "wheel":
            return
        if os.environ.get("ACTIVETRACE_PURE_PYTHON") == "1":
            return
        from setuptools import Distribution, Extension  # type: ignore[import-untyped]
        from setuptools.command.build_ext import build_ext  # type: ignore[import-untyped]

        root = Path(self.root)
        extensions = [
            Extension(name, [str(source)], extra_compile_args=["-O2"])
            for name, source in EXTENSIONS.items()
        ]
        distribution = Distribution({"name": "activetrace-ext", "ext_modules": extensions})
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
        suffix = str(sysconfig.get_config_var("EXT_SUFFIX"))
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        for source in EXTENSIONS.values():
            build_data["artifacts"].append(str(source.with_name(source.stem + suffix)))
