"""A small keep-alive HTTP client on the standard library: notify's gateway adapters and the
webhooks of ``core.webhooks`` use it.

Why not requests/httpx: neither is a yiwang dependency, and an adapter needs little — one
host, one persistent connection per thread (TCP and TLS set up once, not per batch), a
timeout, and errors sorted into kinds the adapters can map (refused: surely not received;
timeout: maybe received). ``http.client`` does that in a page.

A request on a reused connection that the server had already closed (an idle keep-alive
timeout) fails before any byte of a response; that one case is retried once on a fresh
connection. Nothing else is retried here: retries belong to the dispatcher.

``address`` pins the TCP destination to an IP checked beforehand (the SSRF guard of
``core.webhooks``), so a DNS answer that changes between the check and the connection
cannot redirect the request; the Host header and the TLS server name stay the host's.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit


class TransportError(Exception):
    """The request failed below HTTP. ``kind``: refused, timeout or connection."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind, self.detail = kind, detail


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    headers: Mapping[str, str]


class HttpClient:
    """Requests to one base URL (``http://127.0.0.1:8925``, ``https://dysmsapi.aliyuncs.com``)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, address: str | None = None):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.base_url, self.timeout = base_url, timeout
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname, parts.port
        self.base_path = parts.path.rstrip("/")
        self.address = address
        self._local = threading.local()
        self._ssl = ssl.create_default_context() if self.https else None

    def _connect(self) -> http.client.HTTPConnection:
        if self.https:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self._ssl)
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        if self.address is not None:
            address = self.address

            def pinned(destination, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None):
                return socket.create_connection((address, destination[1]), timeout, source_address)

            conn._create_connection = pinned
        return conn

    def close(self) -> None:
        """Close this thread's connection (the next request opens a new one)."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()

    def request(
        self, method: str, path: str, *, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Response:
        """Send one request; raises ``TransportError`` (never for an HTTP error status)."""
        url = self.base_path + path
        for attempt in (1, 2):
            conn = getattr(self._local, "conn", None)
            reused = conn is not None
            if conn is None:
                conn = self._local.conn = self._connect()
            try:
                conn.request(method, url, body=body, headers=dict(headers or {}))
                response = conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as error:
                self.close()
                if reused and attempt == 1:
                    continue  # the server dropped an idle keep-alive connection: try a fresh one
                raise TransportError("connection", str(error) or type(error).__name__) from error
            except TimeoutError as error:
                self.close()
                raise TransportError("timeout", f"no answer within {self.timeout} s") from error
            except ConnectionRefusedError as error:
                self.close()
                raise TransportError("refused", str(error)) from error
            except (OSError, http.client.HTTPException) as error:
                self.close()
                raise TransportError("connection", str(error) or type(error).__name__) from error
            if response.will_close:
                self.close()
            return Response(response.status, data, {k.lower(): v for k, v in response.getheaders()})
        raise AssertionError("unreachable")
