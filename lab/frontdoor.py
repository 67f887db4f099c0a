"""The lab's front door: a small HTTP reverse proxy in front of an app's ready replicas.

It plays the load balancer of a real deployment (HAProxy with ``retries`` and ``option redispatch``):
requests are spread round-robin over the backends; an idempotent request (GET, HEAD) that meets a
connection error, a reset, or a 502/503 is sent again to the *next* backend, so a replica that goes
away between two refreshes of the backend list costs the client nothing. Other methods are retried
only when the connection could not even be opened (nothing was sent). A backend that failed is put
last in the order for a short while, so that requests do not keep paying for it.

The backend list comes from a callable, polled every ``refresh`` seconds; :func:`store_backends`
makes one that reads the containers' status from etcd, and :func:`etcd_backends` is the pure part.

Side effects: :class:`FrontDoor` listens on a TCP socket, opens connections to the backends, and
runs two daemon threads (the server and the backend refresher); :func:`store_backends` returns a
callable that reads etcd. Everything is standard library.
"""

from __future__ import annotations

import http.client
import itertools
import logging
import socketserver
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from specs.cluster import ContainerStatus

if TYPE_CHECKING:
    from common.store import Store

log = logging.getLogger("fusion.lab.frontdoor")

Backend = tuple[str, int]

IDEMPOTENT = frozenset({"GET", "HEAD"})
RETRY_STATUSES = frozenset({502, 503})
# RFC 9110 7.6.1: these describe one connection and are never forwarded.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "transfer-encoding", "upgrade",
})
BACKEND_HEADER = "X-Fusion-Backend"


# --- pure ------------------------------------------------------------------------------------------


def etcd_backends(statuses: Iterable[ContainerStatus], port: int) -> list[Backend]:
    """``(address, port)`` of every ready container that publishes host port ``port``: sorted, unique."""
    return sorted({
        (s.address, port)
        for s in statuses
        if s.ready and s.address and any(p.host_port == port and p.protocol == "tcp" for p in s.ports)
    })


def candidates(backends: list[Backend], start: int, tries: int, penalized: set[Backend]) -> list[Backend]:
    """The backends one request tries, in order: round-robin from ``start``, recently failed ones last.

    Each backend at most once when there are at least ``tries`` of them; fewer are tried again in turn.
    """
    if not backends:
        return []
    n = len(backends)
    order = [backends[(start + i) % n] for i in range(n)]
    order = [b for b in order if b not in penalized] + [b for b in order if b in penalized]
    return [order[i % n] for i in range(max(1, tries))]


def forwarded_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` without hop-by-hop ones (also those that a ``Connection`` header names)."""
    pairs = list(headers)
    named = {t.strip().lower() for k, v in pairs if k.lower() == "connection" for t in v.split(",")}
    return [(k, v) for k, v in pairs if k.lower() not in HOP_BY_HOP and k.lower() not in named]


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]


# --- side effects ----------------------------------------------------------------------------------


def store_backends(store: Store, port: int) -> Callable[[], list[Backend]]:
    """A backend source for :class:`FrontDoor`: the ready containers publishing ``port``, read from etcd."""

    def backends() -> list[Backend]:
        return etcd_backends(store.statuses(), port)

    return backends


class _Answer:
    """What the front door sends back to its client."""

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status, self.reason, self.headers, self.body = status, reason, headers, body


class _Retry(Exception):
    """This backend failed in a way that allows trying the next one."""


class FrontDoor:
    """A round-robin HTTP reverse proxy with retries on the next backend (see the module docstring)."""

    penalty = 2.0  # seconds a failed backend is tried last

    def __init__(self, backends: Callable[[], list[Backend]], listen: tuple[str, int], refresh: float = 0.5,
                 tries: int = 3, timeout: float = 5.0, connect_timeout: float = 1.0) -> None:
        self._source = backends
        self._listen = listen
        self.refresh = refresh
        self.tries = max(1, tries)
        self.timeout = timeout
        self.connect_timeout = min(connect_timeout, timeout)
        self._backends: list[Backend] = []
        self._failed: dict[Backend, float] = {}  # backend -> monotonic time until which it goes last
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._last_error: str | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> FrontDoor:
        """Bind, read the backends once, and serve in daemon threads. Returns ``self``."""
        server = _Server(self._listen, _handler(self))
        self._server = server
        self._refresh_once()
        self._threads = [
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                             name="frontdoor-serve", daemon=True),
            threading.Thread(target=self._refresh_loop, name="frontdoor-refresh", daemon=True),
        ]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        """Stop serving and refreshing; connections being answered finish on their own (daemon threads)."""
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for t in self._threads:
            t.join(timeout=5)
        self._threads = []

    def __enter__(self) -> FrontDoor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        """Where it listens (the real port when ``listen`` asked for port 0)."""
        if self._server is None:
            return self._listen
        host, port = self._server.server_address[:2]
        return (host if isinstance(host, str) else host.decode(), port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    @property
    def backends(self) -> list[Backend]:
        with self._lock:
            return list(self._backends)

    # --- the backend list --------------------------------------------------------------------------

    def _refresh_loop(self) -> None:
        while not self._stopping.wait(self.refresh):
            self._refresh_once()

    def _refresh_once(self) -> None:
        try:
            new = sorted(set(self._source()))
        except Exception as e:  # a blip in etcd must not empty the list
            if str(e) != self._last_error:  # once per distinct error, not twice a second
                log.warning("backend refresh failed, keeping %d backends: %s", len(self.backends), e)
            self._last_error = str(e)
            return
        if self._last_error is not None:
            log.warning("backend refresh works again")
            self._last_error = None
        with self._lock:
            old, self._backends = self._backends, new
        if new != old:
            log.info("backends: %s", ", ".join(f"{h}:{p}" for h, p in new) or "none")

    def _plan(self) -> list[Backend]:
        now = time.monotonic()
        with self._lock:
            self._failed = {b: t for b, t in self._failed.items() if t > now}
            return candidates(self._backends, next(self._counter), self.tries, set(self._failed))

    def _penalize(self, backend: Backend) -> None:
        with self._lock:
            self._failed[backend] = time.monotonic() + self.penalty

    # --- one request -------------------------------------------------------------------------------

    def answer(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes | None,
               client: str) -> _Answer:
        """Forward one request: to the backends in :meth:`_plan` order, until one answers for good."""
        plan = self._plan()
        if not plan:
            return _error(503, "no ready backend")
        sent = forwarded_headers(headers)
        sent = [(k, v) for k, v in sent if k.lower() not in ("content-length", "x-forwarded-for")]
        sent += [("X-Forwarded-For", client), ("Connection", "close")]
        last = ""
        for backend in plan:
            try:
                return self._forward(backend, method, target, sent, body)
            except _Retry as e:
                last = f"{backend[0]}:{backend[1]}: {e}"
                self._penalize(backend)
                log.info("%s %s: %s, trying the next backend", method, target, last)
        return _error(502, f"no backend answered, last error {last}")

    def _forward(self, backend: Backend, method: str, target: str, headers: list[tuple[str, str]],
                 body: bytes | None) -> _Answer:
        conn = http.client.HTTPConnection(backend[0], backend[1], timeout=self.connect_timeout)
        try:
            try:
                conn.connect()
            except OSError as e:  # nothing was sent: any method may go elsewhere
                raise _Retry(f"connect: {_describe(e)}") from e
            if conn.sock is not None:
                conn.sock.settimeout(self.timeout)
            try:
                conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                if not any(k.lower() == "host" for k, _ in headers):
                    conn.putheader("Host", f"{backend[0]}:{backend[1]}")
                for k, v in headers:
                    conn.putheader(k, v)
                if body is not None or method in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", str(len(body or b"")))
                conn.endheaders(body or None)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException) as e:
                if method in IDEMPOTENT:
                    raise _Retry(_describe(e)) from e
                return _error(502, f"{backend[0]}:{backend[1]}: {_describe(e)} (not retried: {method})")
            if resp.status in RETRY_STATUSES and method in IDEMPOTENT:
                raise _Retry(f"answered {resp.status} {resp.reason}")
            out = forwarded_headers(resp.getheaders())
            if method != "HEAD":
                out = [(k, v) for k, v in out if k.lower() != "content-length"]
                out.append(("Content-Length", str(len(data))))
            out.append((BACKEND_HEADER, f"{backend[0]}:{backend[1]}"))
            return _Answer(resp.status, resp.reason, out, data)
        finally:
            conn.close()


def _describe(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _error(status: int, message: str) -> _Answer:
    body = (_one_line(message) + "\n").encode()
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    return _Answer(status, http.HTTPStatus(status).phrase, headers, body)


def _read_body(handler: BaseHTTPRequestHandler) -> bytes | None:
    """The request body (``Content-Length`` or chunked), or None when the request has none."""
    if "chunked" in handler.headers.get("Transfer-Encoding", "").lower():
        parts: list[bytes] = []
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline().strip():  # trailers
                    pass
                return b"".join(parts)
            parts.append(handler.rfile.read(size))
            handler.rfile.readline()
    length = handler.headers.get("Content-Length")
    return handler.rfile.read(int(length)) if length else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        # HTTPServer's own looks the address up in DNS (getfqdn), which can hang on a lab bridge.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)


def _handler(door: FrontDoor) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "fusion-frontdoor"
        timeout = 60  # idle keep-alive connections

        def _proxy(self) -> None:
            try:
                body = _read_body(self)
            except (ValueError, OSError):
                self.send_error(400, "bad request body")
                return
            ans = door.answer(self.command, self.path, list(self.headers.items()), body, self.client_address[0])
            try:
                self.send_response(ans.status, ans.reason)
                for k, v in ans.headers:
                    self.send_header(k, v)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(ans.body)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                self.close_connection = True

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _proxy

        def log_message(self, format: str, *args: object) -> None:
            log.debug("%s %s", self.address_string(), format % args)

    return Handler
