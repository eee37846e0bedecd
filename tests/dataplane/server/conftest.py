"""The server tests run on asyncio's loop and on uvloop, as the transport tests do."""

from tests.dataplane.transport.conftest import pytest_asyncio_loop_factories

__all__ = ["pytest_asyncio_loop_factories"]
