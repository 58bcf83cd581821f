"""The shared loopback server of both fakes: keep-alive, chunked bodies, and a clean stop."""

from __future__ import annotations

import http.client
import threading
from http.server import BaseHTTPRequestHandler

import pytest

from tests.fakes.bitrix24_portal import FakePortal
from tests.fakes.http_server import LoopbackServer, drop_connection, read_body
from tests.fakes.slack_api import FakeSlack


def echo(handler: BaseHTTPRequestHandler, verb: str) -> None:
    body = read_body(handler)
    if body == b"drop":
        drop_connection(handler)
        return
    answer = verb.encode() + b" " + body
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(answer)))
    handler.end_headers()
    handler.wfile.write(answer)


def test_keep_alive_chunked_body_and_stop_cuts_idle_connections() -> None:
    server = LoopbackServer(("127.0.0.1", 0), echo, name="test", software="fake/1").start()
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request("POST", "/", body=iter([b"hel", b"lo"]), encode_chunked=True)
    response = connection.getresponse()
    assert (response.status, response.read(), response.getheader("Server")) == (
        200,
        b"POST hello",
        "fake/1",
    )
    connection.request("GET", "/")  # the same connection, kept alive
    assert connection.getresponse().read() == b"GET "
    assert len(server.connections) == 1
    server.stop()  # returns although the client still holds its idle connection
    assert not server.connections
    assert not any(t.name == f"test-{server.port}" for t in threading.enumerate())
    connection.close()


def test_a_dropped_connection_has_no_response() -> None:
    server = LoopbackServer(("127.0.0.1", 0), echo, name="test").start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        connection.request("POST", "/", body=b"drop")
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            connection.getresponse()
    finally:
        server.stop()


def test_both_fakes_serve_from_the_shared_server() -> None:
    with FakeSlack() as slack, FakePortal() as portal:
        for fake in (slack, portal):
            assert isinstance(fake._server, LoopbackServer)
