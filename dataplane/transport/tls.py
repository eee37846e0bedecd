"""TLS client contexts for upstreams, built once and shared by every connection."""

from __future__ import annotations

import os
import ssl

__all__ = ["TlsContexts", "tls_version"]


class TlsContexts:
    """One verifying and one non-verifying ``SSLContext`` (creating one costs milliseconds)."""

    def __init__(self, cafile: str | os.PathLike[str] | None = None) -> None:
        self.cafile = cafile
        self._contexts: dict[bool, ssl.SSLContext] = {}

    def get(self, verify: bool) -> ssl.SSLContext:
        """The context for upstreams whose certificate is (or is not) verified."""
        context = self._contexts.get(verify)
        if context is None:
            context = self._contexts[verify] = self._build(verify)
        return context

    def _build(self, verify: bool) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.cafile if verify else None)
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["http/1.1"])
        return context


def tls_version(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str:
    """The negotiated protocol version as OpenTelemetry writes it (``"1.3"``)."""
    version = ssl_object.version() if ssl_object is not None else None
    if not version:
        return ""
    return version.removeprefix("TLSv").removeprefix("SSLv")
