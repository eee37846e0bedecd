"""A small mutable header list over ASGI's raw ``(name, value)`` byte pairs.

Names are stored lower-case (as ASGI servers deliver them); values are kept as bytes so
forwarding them costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator

__all__ = ["HeaderList", "host_without_port", "python_raw_header", "raw_header"]


_KEYS: dict[str, bytes] = {}
_MAX_KEYS = 4096


def _key(name: str) -> bytes:
    """``name`` as stored: lower-case latin-1 bytes (memoised: names come from plugin code and
    config, so the set is small; bounded anyway)."""
    key = _KEYS.get(name)
    if key is None:
        key = name.lower().encode("latin-1")
        if len(_KEYS) < _MAX_KEYS:
            _KEYS[name] = key
    return key


def python_raw_header(raw: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of ``name`` (a lower-case byte name) in raw ``(name, value)`` pairs."""
    for key, value in raw:
        if key == name:
            return value
    return None


raw_header: Callable[[Iterable[tuple[bytes, bytes]], bytes], bytes | None]
"""The first value of ``name`` (a lower-case byte name) in raw ``(name, value)`` pairs: C
(``dataplane/_http1.c``, no Python frame per lookup) when built, else :func:`python_raw_header`."""
try:
    from dataplane._http1 import raw_header
except ImportError:  # not built (no compiler where the package was installed)
    raw_header = python_raw_header


class HeaderList:
    """Ordered, multi-valued, case-insensitive headers."""

    __slots__ = ("raw",)

    def __init__(self, raw: Iterable[tuple[bytes, bytes]] = ()) -> None:
        self.raw: list[tuple[bytes, bytes]] = list(raw)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``."""
        value = raw_header(self.raw, _key(name))
        return value.decode("latin-1") if value is not None else default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        key = _key(name)
        return [v.decode("latin-1") for k, v in self.raw if k == key]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = _key(name)
        # A loop, not any() over a generator: no generator frame per call (request path).
        for k, _ in self.raw:  # noqa: SIM110
            if k == key:
                return True
        return False

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` by ``value``."""
        key = _key(name)
        self._drop((key,))
        self.raw.append((key, value.encode("latin-1")))

    def set_many(self, items: Iterable[tuple[str, str]]) -> None:
        """:meth:`set` for several names in one pass over the list."""
        self.set_raw([(_key(name), value.encode("latin-1")) for name, value in items])

    def set_raw(
        self, pairs: list[tuple[bytes, bytes]], names: Collection[bytes] | None = None
    ) -> None:
        """:meth:`set_many` for pairs already as stored (lower-case names, byte values);
        ``names``, if the caller has it at hand, is the set of the pairs' names."""
        self._drop({key for key, _ in pairs} if names is None else names)
        self.raw += pairs

    def add(self, name: str, value: str) -> None:
        """Append a value of ``name``."""
        self.raw.append((_key(name), value.encode("latin-1")))

    def remove(self, name: str) -> None:
        """Remove every value of ``name``."""
        self._drop((_key(name),))

    def remove_many(self, names: Iterable[str]) -> None:
        """Remove every value of each of ``names``, in one pass."""
        self._drop({_key(name) for name in names})

    def remove_raw(self, keys: Collection[bytes]) -> None:
        """:meth:`remove_many` for names already as stored (lower-case bytes)."""
        self._drop(keys)

    def _drop(self, keys: Collection[bytes]) -> None:
        raw = self.raw
        for k, _ in raw:
            if k in keys:  # rebuild only when there is something to drop
                self.raw = [(k, v) for k, v in raw if k not in keys]
                return

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


def host_without_port(host: str) -> str:
    """``Host`` without its port: ``a.example:8000`` → ``a.example``, ``[::1]:80`` → ``[::1]``."""
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    return host.partition(":")[0]
