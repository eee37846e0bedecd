"""The span export's batch settings: read from the environment, bounded, given to the export."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dataplane.node import Node
from dataplane.settings import DataPlaneSettings


def test_the_node_exports_with_the_batch_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTIVETRACE_EXPORT_BATCH_SPANS", "16")
    monkeypatch.setenv("ACTIVETRACE_EXPORT_FLUSH_INTERVAL_SECS", "1.5")
    node = Node(DataPlaneSettings(node_id="n"))
    assert (node.export.batch_spans, node.export.flush_interval) == (16, 1.5)


def test_the_defaults_are_those_documented() -> None:
    settings = DataPlaneSettings(node_id="n")
    assert (settings.export_batch_spans, settings.export_flush_interval_secs) == (2048, 0.2)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("export_batch_spans", 0),
        ("export_batch_spans", 8193),  # past the control plane's 4 MB message limit
        ("export_flush_interval_secs", 0),
        ("export_flush_interval_secs", 61),
    ],
)
def test_out_of_range_batch_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, field: str, value: float
) -> None:
    monkeypatch.setenv(f"ACTIVETRACE_{field.upper()}", str(value))
    with pytest.raises(ValidationError, match=field):
        DataPlaneSettings(node_id="n")
