"""Loaded by a node that ``bench.specialization`` starts (this directory on its PYTHONPATH):
installs the signal handlers that report the generic instructions the node runs."""

import os
from pathlib import Path

_report = os.environ.get("ACTIVETRACE_SPECIALIZATION_REPORT")
if _report:
    from bench.specialization import install_signals

    install_signals(Path(_report))
