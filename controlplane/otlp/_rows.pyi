from collections.abc import Callable, Sequence
from typing import Any

def rows(
    resource_spans: Sequence[bytes],
    resource_info: Callable[[bytes], tuple[str, str | None, str, bool]],
    dumps: Callable[[dict[str, Any]], str],
    /,
) -> tuple[
    list[tuple[Any, ...]],
    dict[str, int],
    list[tuple[str, str, int, int, bool, dict[str, Any]]],
]: ...
def node_span_batch(message: bytes, /) -> tuple[str, list[str], list[bytes]] | None: ...
