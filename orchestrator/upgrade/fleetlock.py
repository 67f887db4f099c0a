"""A FleetLock-protocol server (the reboot-lock protocol Zincati speaks) backed by the reboot slots.

Side effects: an HTTP server (stdlib ``http.server``, one thread per request) on a given address,
and etcd reads/writes through :mod:`orchestrator.upgrade.slots`.

Protocol: ``POST /v1/pre-reboot`` takes a slot for the client (recursive: a client that already
holds one gets it again), ``POST /v1/steady-state`` releases the client's slot if it holds one.
Requests need the header ``fleet-lock-protocol: true`` and the body
``{"client_params": {"id": "<machine id>", "group": "<group>"}}``. Success is HTTP 200 with
``{"kind": "ok", "value": "..."}``; failures carry ``{"kind": "...", "value": "<why>"}``:
``bad_request`` (400: header, body or fields missing), ``method_not_allowed`` (405),
``not_found`` (404), ``failed_lock`` (409: every slot is held), ``failed_unlock`` (409: the slot
belongs to a rollout), ``internal_error`` (503: etcd unreachable).

FleetLock slots are held in the client's own name (its id) with no rollout owner, so they count
against the same ``slot_count`` as a rollout's hosts.

``fusion fleetlock serve --listen HOST:PORT [--slots N]`` runs it (orchestrator.upgrade.cli); the
agent's auto-update mode (host.agent.autoupdate, FUSION_AUTO_UPDATE=fleetlock) is its client, as
Zincati would be. :func:`parse_listen` is pure.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from common.store import Store
from orchestrator.upgrade import slots
from specs.errors import FusionError, InputError

MAX_BODY = 64 * 1024


class ServeError(FusionError):
    """The server cannot listen (address in use, not an address of this machine)."""


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6; PORT 0 picks a free one) -> (host, port)."""
    host, sep, port = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535 or any(c in host for c in "[]/ "):
        raise InputError(f"--listen {text!r} is not HOST:PORT", hint="e.g. --listen 127.0.0.1:8095 or [::1]:8095")
    return host, int(port)


class _Reply(Exception):
    def __init__(self, status: int, kind: str, value: str) -> None:
        super().__init__(value)
        self.status, self.kind, self.value = status, kind, value


def _client_params(headers: Any, body: bytes) -> tuple[str, str]:
    if headers.get("fleet-lock-protocol", "").strip().lower() != "true":
        raise _Reply(400, "bad_request", "missing header fleet-lock-protocol: true")
    try:
        params = json.loads(body)["client_params"]
        client_id, group = params["id"], params.get("group", "default")
    except (ValueError, KeyError, TypeError) as e:
        raise _Reply(400, "bad_request", f'body must be {{"client_params": {{"id": ..., "group": ...}}}}: {e}') from e
    if not isinstance(client_id, str) or not client_id or not isinstance(group, str) or not group:
        raise _Reply(400, "bad_request", "client_params.id and client_params.group must be non-empty strings")
    return client_id, group


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class FleetLockServer:
    """``start()`` serves in a background thread; ``stop()`` shuts it down and closes the socket."""

    def __init__(self, store: Store, address: tuple[str, int], slot_count: int = 1) -> None:
        self.store = store
        self.slot_count = slot_count
        self._lock = threading.Lock()  # one etcd client, one request at a time
        try:
            self._httpd = (_Server6 if ":" in address[0] else ThreadingHTTPServer)(address, self._handler())
        except OSError as e:
            raise ServeError(f"cannot listen on {address[0]}:{address[1]}: {e.strerror or e}",
                             hint="pick another --listen address or port") from e
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> FleetLockServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name="fleetlock", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def handle(self, path: str, headers: Any, body: bytes) -> tuple[int, str, str]:
        """One request -> (HTTP status, kind, value)."""
        try:
            if path not in ("/v1/pre-reboot", "/v1/steady-state"):
                raise _Reply(404, "not_found", f"no such endpoint {path}")
            client_id, group = _client_params(headers, body)
            with self._lock:
                if path == "/v1/pre-reboot":
                    try:
                        ok = slots.acquire(self.store, self.slot_count, client_id, "FleetLock pre-reboot", None,
                                           group=group)
                    except slots.SlotError as e:
                        raise _Reply(409, "failed_lock", str(e)) from e
                    if not ok:
                        raise _Reply(409, "failed_lock", f"all {self.slot_count} reboot slot(s) are held")
                    return 200, "ok", f"{client_id} holds a reboot slot"
                try:
                    slots.release(self.store, client_id, None)
                except slots.SlotError as e:
                    raise _Reply(409, "failed_unlock", str(e)) from e
                return 200, "ok", f"{client_id} holds no reboot slot"
        except _Reply as r:
            return r.status, r.kind, r.value
        except FusionError as e:
            return 503, "internal_error", str(e)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self, status: int, kind: str, value: str) -> None:
                data = json.dumps({"kind": kind, "value": value}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY:
                    self._reply(400, "bad_request", "body too large")
                    return
                self._reply(*server.handle(self.path, self.headers, self.rfile.read(length)))

            def do_GET(self) -> None:  # noqa: N802
                self._reply(405, "method_not_allowed", "use POST")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # library code prints nothing

        return Handler
