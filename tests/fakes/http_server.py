"""The one threaded loopback HTTP server under both fakes (FakeSlack and FakePortal).

Each fake hands it a ``serve(handler, verb)`` callable that reads the request and writes the
answer. The server runs in a daemon thread, never on a test's event loop, keeps connections
alive as the real services do, and tracks them so ``stop()`` can cut idle keep-alive sockets of
clients and wait until no handler thread outlives the test.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["LoopbackServer", "Serve", "drop_connection", "read_body"]

Serve = Callable[[BaseHTTPRequestHandler, str], None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real services behind their proxies
    sys_version = ""
    # Headers and body go out in two writes; without TCP_NODELAY every keep-alive response
    # waits ~40 ms for the client's delayed ACK, which would make the suite slow.
    disable_nagle_algorithm = True
    server: LoopbackServer

    def version_string(self) -> str:
        return self.server.software

    def do_GET(self) -> None:
        self.server.serve(self, "GET")

    def do_POST(self) -> None:
        self.server.serve(self, "POST")

    def log_message(self, format: str, *args: Any) -> None:
        # Silence per-request logging: tests read what the fake recorded instead.
        return


class LoopbackServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that serves from a daemon thread until ``stop()``."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops SYNs under concurrent tests (1 s stalls)

    def __init__(
        self,
        address: tuple[str, int],
        serve: Serve,
        *,
        name: str,
        software: str = "BaseHTTP",
        poll_interval: float = 0.01,
    ) -> None:
        self.serve = serve
        self.software = software
        self._name = name
        self._poll_interval = poll_interval
        self._thread: threading.Thread | None = None
        # Open connections are tracked so stop() can cut idle keep-alive sockets of clients.
        self.connections: set[socket.socket] = set()
        self.connections_changed = threading.Condition()
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> LoopbackServer:
        """Serve from a daemon thread; stop() waits up to one poll interval."""
        self._thread = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": self._poll_interval},
            name=f"{self._name}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections and wait for their handler threads."""
        self.shutdown()
        self.server_close()
        with self.connections_changed:
            for conn in list(self.connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
            # Handler threads close their sockets themselves; wait so none outlive the test.
            self.connections_changed.wait_for(lambda: not self.connections, timeout=2.0)
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_changed:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        super().shutdown_request(request)
        with self.connections_changed:
            self.connections.discard(request)
            self.connections_changed.notify_all()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up is part of the game, not a failure to print.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """The request body, with Content-Length or chunked."""
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        chunks = []
        while True:
            size_line = handler.rfile.readline(65537)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # skip trailers
                break
            chunks.append(handler.rfile.read(size))
            handler.rfile.readline()
        return b"".join(chunks)
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length > 0 else b""


def drop_connection(handler: BaseHTTPRequestHandler) -> None:
    """Close the connection without a byte of response (the client sees a disconnect)."""
    handler.close_connection = True
    with contextlib.suppress(OSError):
        handler.connection.shutdown(socket.SHUT_RDWR)
