"""The node's process tuning: what it changes, and what it leaves to the operator."""

from __future__ import annotations

import platform

import pytest

from dataplane.node import tune_allocator

MALLOC_ENVIRONMENT = ("GLIBC_TUNABLES", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")


@pytest.mark.parametrize("name", MALLOC_ENVIRONMENT)
def test_malloc_tuned_in_the_environment_is_left_alone(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for other in MALLOC_ENVIRONMENT:
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv(
        name, "glibc.malloc.trim_threshold=1048576" if name == "GLIBC_TUNABLES" else "1048576"
    )
    assert tune_allocator() is False


def test_malloc_is_tuned_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in MALLOC_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    assert tune_allocator() is (platform.libc_ver()[0] == "glibc")
