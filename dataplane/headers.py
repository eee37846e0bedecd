"""A small mutable header list over ASGI's raw ``(name, value)`` byte pairs.

Names are stored lower-case (as ASGI servers deliver them); values are kept as bytes so
forwarding them costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

__all__ = ["HeaderList"]


class HeaderList:
    """Ordered, multi-valued, case-insensitive headers."""

    __slots__ = ("raw",)

    def __init__(self, raw: Iterable[tuple[bytes, bytes]] = ()) -> None:
        self.raw: list[tuple[bytes, bytes]] = list(raw)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``."""
        key = name.lower().encode("latin-1")
        for k, v in self.raw:
            if k == key:
                return v.decode("latin-1")
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        key = name.lower().encode("latin-1")
        return [v.decode("latin-1") for k, v in self.raw if k == key]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower().encode("latin-1")
        return any(k == key for k, _ in self.raw)

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` by ``value``."""
        key = name.lower().encode("latin-1")
        self.raw = [(k, v) for k, v in self.raw if k != key]
        self.raw.append((key, value.encode("latin-1")))

    def add(self, name: str, value: str) -> None:
        """Append a value of ``name``."""
        self.raw.append((name.lower().encode("latin-1"), value.encode("latin-1")))

    def remove(self, name: str) -> None:
        """Remove every value of ``name``."""
        key = name.lower().encode("latin-1")
        self.raw = [(k, v) for k, v in self.raw if k != key]

    def rename(self, old: str, new: str) -> None:
        """Move every value of ``old`` to ``new`` (appended); nothing when ``old`` is absent."""
        values = self.get_all(old)
        if values and old.lower() != new.lower():
            self.remove(old)
            for value in values:
                self.add(new, value)

    def items(self) -> Iterator[tuple[str, str]]:
        """``(name, value)`` pairs as text."""
        for k, v in self.raw:
            yield k.decode("latin-1"), v.decode("latin-1")

    def __len__(self) -> int:
        return len(self.raw)
