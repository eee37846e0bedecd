from collections.abc import Iterable

def header_block(
    first_line: bytes, headers: Iterable[tuple[bytes, bytes]], /
) -> tuple[bytes, bytes | None, bool, bool]: ...
