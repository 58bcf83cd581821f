"""A real headless Chromium, driven through chromedriver's W3C WebDriver HTTP API.

Debian's `chromium` and `chromium-driver`; where they are missing and the tests run as root,
`browser_binaries()` installs them with apt-get, else the caller skips with the reason. The
WebDriver protocol is a handful of JSON requests, sent here with httpx (no extra client library).
"""

from __future__ import annotations

import base64
import fcntl
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

PACKAGES = ("chromium", "chromium-driver")
INSTALL_LOCK = "/tmp/b24mail-browser-install.lock"


def browser_binaries() -> tuple[str, str] | str:
    """(chromium, chromedriver) paths, installing the Debian packages if needed and allowed;
    else the reason they are not there."""
    found = shutil.which("chromium"), shutil.which("chromedriver")
    if all(found):
        return str(found[0]), str(found[1])
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "chromium and chromium-driver are not installed, and only root may apt-get them"
    if shutil.which("apt-get") is None:
        return "chromium and chromium-driver are not installed, and there is no apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # Test processes (pytest-xdist) may all get here at once: one installs, the others wait.
    with open(INSTALL_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not all((shutil.which("chromium"), shutil.which("chromedriver"))):
            for command in (["apt-get", "update"], ["apt-get", "install", "-y", *PACKAGES]):
                done = subprocess.run(
                    command, env=env, capture_output=True, text=True, timeout=1200
                )
                if done.returncode != 0:
                    return f"{' '.join(command)} failed: {done.stderr.strip()[-300:]}"
    found = shutil.which("chromium"), shutil.which("chromedriver")
    if all(found):
        return str(found[0]), str(found[1])
    return "apt-get installed chromium and chromium-driver, yet they are not on PATH"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Browser:
    """One WebDriver session: navigate, read the DOM with scripts, take screenshots."""

    def __init__(self, http: httpx.Client, session_id: str) -> None:
        self._http = http
        self._session = f"/session/{session_id}"

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        response = self._http.request(method, self._session + path, json=payload)
        body = response.json()
        if response.status_code != 200:
            raise AssertionError(f"WebDriver {method} {path}: {body}")
        return body.get("value")

    def get(self, url: str) -> None:
        self._call("POST", "/url", {"url": url})

    def script(self, source: str, *args: Any) -> Any:
        return self._call("POST", "/execute/sync", {"script": source, "args": list(args)})

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self._call("GET", "/screenshot")))
        return path


@contextmanager
def headless_chromium(chromium: str, chromedriver: str, *, language: str) -> Iterator[Browser]:
    """A fresh Chromium whose Accept-Language is `language`, for the `with` block."""
    port = _free_port()
    driver = subprocess.Popen(
        [chromedriver, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        for _ in range(600):
            try:
                if http.get("/status").json()["value"]["ready"]:
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        options = {
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                f"--lang={language}",
                "--window-size=1000,1400",
            ],
            "prefs": {"intl.accept_languages": language},
        }
        created = http.post(
            "/session",
            json={"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}},
        ).json()
        session_id = created["value"]["sessionId"]
        try:
            yield Browser(http, session_id)
        finally:
            http.delete(f"/session/{session_id}")
    finally:
        http.close()
        driver.terminate()
        driver.wait(timeout=10)
