"""The lab's front door: round robin, retries on the next backend, refreshes, and etcd filtering.

Backends are small HTTP servers on loopback started by the tests (port 0).
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lab.frontdoor import FrontDoor, candidates, etcd_backends, forwarded_headers
from specs.cluster import ContainerStatus, PublishedPort

Backend = tuple[str, int]


class Echo:
    """A backend that answers every request with JSON about it (or with ``status``)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.hits = 0
        echo = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                echo.hits += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = json.dumps({
                    "method": self.command, "path": self.path, "body": self.rfile.read(length).decode(),
                    "connection": self.headers.get("Connection"), "x-hop": self.headers.get("X-Hop"),
                }).encode()
                self.send_response(echo.status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Keep-Alive", "timeout=5")
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.addr: Backend = ("127.0.0.1", self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Resetter:
    """A backend that reads the request head, then resets the connection (RST, no answer)."""

    def __init__(self) -> None:
        self.hits = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.addr: Backend = ("127.0.0.1", self.sock.getsockname()[1])
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
            self.hits += 1
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    def close(self) -> None:
        self.sock.close()


Servers = list[Echo | Resetter | FrontDoor]


def dead_port() -> Backend:
    """A loopback port that nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return ("127.0.0.1", s.getsockname()[1])


@pytest.fixture
def servers() -> Iterator[Servers]:
    started: Servers = []
    yield started
    for s in reversed(started):
        s.stop() if isinstance(s, FrontDoor) else s.close()


@pytest.fixture
def make(servers: Servers) -> Callable[..., FrontDoor]:
    def make(backends: list[Backend] | Callable[[], list[Backend]], **kw: float) -> FrontDoor:
        source = backends if callable(backends) else (lambda: list(backends))
        door = FrontDoor(source, ("127.0.0.1", 0), **kw).start()  # type: ignore[arg-type]
        servers.append(door)
        return door

    return make


def echo(servers: Servers, status: int = 200) -> Echo:
    e = Echo(status)
    servers.append(e)
    return e


def request(door: FrontDoor, method: str = "GET", path: str = "/", body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, str | None, bytes]:
    conn = http.client.HTTPConnection(*door.address, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.getheader("X-Fusion-Backend"), resp.read()
    finally:
        conn.close()


def name(addr: Backend) -> str:
    return f"{addr[0]}:{addr[1]}"


def test_round_robin_over_the_backends(servers: Servers, make: Callable[..., FrontDoor]) -> None:
    backends = [echo(servers) for _ in range(3)]
    door = make([b.addr for b in backends])
    seen = [request(door)[1] for _ in range(6)]
    assert seen[:3] == seen[3:] and sorted(str(s) for s in seen[:3]) == sorted(name(b.addr) for b in backends)
    assert [b.hits for b in backends] == [2, 2, 2]


def test_a_dead_backend_costs_clients_nothing(servers: Servers, make: Callable[..., FrontDoor]) -> None:
    a, b = echo(servers), echo(servers)
    door = make([dead_port(), a.addr, b.addr])
    answers = [request(door) for _ in range(9)]
    assert [status for status, _, _ in answers] == [200] * 9
    assert a.hits + b.hits == 9 and a.hits and b.hits


def test_a_reset_is_retried_on_another_backend(servers: Servers, make: Callable[..., FrontDoor]) -> None:
    reset, a = Resetter(), echo(servers)
    servers.append(reset)
    door = make([reset.addr, a.addr])
    answers = [request(door, path="/x?y=1") for _ in range(4)]
    assert [(s, backend) for s, backend, _ in answers] == [(200, name(a.addr))] * 4
    assert reset.hits >= 1
    assert json.loads(answers[0][2])["path"] == "/x?y=1"


def test_a_503_is_retried_on_another_backend(servers: Servers, make: Callable[..., FrontDoor]) -> None:
    busy, a = echo(servers, status=503), echo(servers)
    door = make([busy.addr, a.addr])
    assert [request(door)[:2] for _ in range(4)] == [(200, name(a.addr))] * 4
    assert busy.hits >= 1


def test_no_backends_is_503(make: Callable[..., FrontDoor]) -> None:
    status, backend, body = request(make([]))
    assert (status, backend, body) == (503, None, b"no ready backend\n")


def test_all_tries_failing_is_502_naming_the_last_error(make: Callable[..., FrontDoor]) -> None:
    dead = dead_port()
    status, _, body = request(make([dead], tries=3))
    assert status == 502
    assert body.count(b"\n") == 1 and f"{name(dead)}: connect".encode() in body


def test_post_is_not_retried_after_it_was_sent(servers: Servers, make: Callable[..., FrontDoor]) -> None:
    reset, a = Resetter(), echo(servers)
    servers.append(reset)
    door = make([reset.addr, a.addr])
    answers = sorted(request(door, "POST", body=b"once")[::2] for _ in range(2))
    assert answers[0][0] == 200 and json.loads(answers[0][1])["body"] == "once"
    assert answers[1][0] == 502 and b"not retried" in answers[1][1]
    assert reset.hits == 1 and a.hits == 1


def test_post_is_retried_when_the_connection_could_not_be_opened(servers: Servers,
                                                                make: Callable[..., FrontDoor]) -> None:
    a = echo(servers)
    door = make([dead_port(), a.addr])
    for _ in range(2):
        status, backend, body = request(door, "POST", body=b"hello")
        assert (status, backend, json.loads(body)["body"]) == (200, name(a.addr), "hello")


def test_hop_by_hop_headers_stay_on_their_hop(servers: Servers, make: Callable[..., FrontDoor]) -> None:
    a = echo(servers)
    door = make([a.addr])
    conn = http.client.HTTPConnection(*door.address, timeout=5)
    conn.request("GET", "/h", headers={"Connection": "X-Hop", "X-Hop": "1"})
    resp = conn.getresponse()
    seen = json.loads(resp.read())
    conn.close()
    assert seen["connection"] == "close" and seen["x-hop"] is None
    assert resp.getheader("Keep-Alive") is None and resp.getheader("X-Fusion-Backend") == name(a.addr)


def test_the_backend_list_is_refreshed(servers: Servers, make: Callable[..., FrontDoor]) -> None:
    a, b = echo(servers), echo(servers)
    current = [a.addr]
    calls = 0

    def source() -> list[Backend]:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("etcd blinked")  # the previous list is kept
        return list(current)

    door = make(source, refresh=0.02)
    assert request(door)[1] == name(a.addr)
    current[:] = [b.addr]
    deadline = time.monotonic() + 1.5
    while request(door)[1] != name(b.addr):
        assert time.monotonic() < deadline, "the new backend list was not picked up"
        time.sleep(0.02)
    assert door.backends == [b.addr] and calls >= 3


def test_candidates_rotate_and_put_failed_backends_last() -> None:
    a, b, c = ("a", 1), ("b", 1), ("c", 1)
    assert candidates([a, b, c], 0, 3, set()) == [a, b, c]
    assert candidates([a, b, c], 4, 3, set()) == [b, c, a]
    assert candidates([a, b, c], 0, 3, {a}) == [b, c, a]
    assert candidates([a, b, c], 0, 2, set()) == [a, b]
    assert candidates([a], 0, 3, set()) == [a, a, a]
    assert candidates([], 0, 3, set()) == []


def test_forwarded_headers_drop_hop_by_hop_ones() -> None:
    headers = [("Host", "x"), ("Connection", "keep-alive, X-Private"), ("Keep-Alive", "5"),
               ("X-Private", "1"), ("Transfer-Encoding", "chunked"), ("Accept", "*/*")]
    assert forwarded_headers(headers) == [("Host", "x"), ("Accept", "*/*")]


def status(address: str | None, ports: list[tuple[int, int]], state: str = "active", health: str = "none",
           replica: int = 1) -> ContainerStatus:
    return ContainerStatus.model_validate({
        "app": "web", "service": "front", "replica": replica, "host": "h1", "unit": "web-front-1.service",
        "spec_revision": 1, "service_hash": "abc", "state": state, "health": health, "address": address,
        "ports": [PublishedPort(container_port=c, host_port=h) for c, h in ports],
    })


@pytest.mark.parametrize(("statuses", "expected"), [
    ([status("10.0.0.12", [(80, 8080)]), status("10.0.0.11", [(80, 8080)])],
     [("10.0.0.11", 8080), ("10.0.0.12", 8080)]),
    ([status("10.0.0.11", [(80, 8080)]), status("10.0.0.11", [(80, 8080)], replica=2)], [("10.0.0.11", 8080)]),
    ([status("10.0.0.11", [(80, 9090), (81, 8080)])], [("10.0.0.11", 8080)]),
    ([status("10.0.0.11", [(8080, 9090)])], []),
    ([status("10.0.0.11", [])], []),
    ([status(None, [(80, 8080)])], []),
    ([status("10.0.0.11", [(80, 8080)], state="activating")], []),
    ([status("10.0.0.11", [(80, 8080)], health="unhealthy")], []),
    ([status("10.0.0.11", [(80, 8080)], health="starting")], []),
    ([status("10.0.0.11", [(80, 8080)], health="healthy")], [("10.0.0.11", 8080)]),
])
def test_etcd_backends_are_the_ready_containers_publishing_the_port(
        statuses: list[ContainerStatus], expected: list[Backend]) -> None:
    assert etcd_backends(statuses, 8080) == expected
