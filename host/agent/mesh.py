"""The routing mesh: every host answers on every published port, wherever the service runs.

A service that publishes a host port runs on some hosts only. On each of the other hosts the agent
keeps a ``fusion-mesh-<port>.service`` unit (:func:`mesh_units`, pure) that runs this module's
proxy: it listens on the port and forwards each TCP connection to a ready replica on another host
(round robin, the next one when a connection is refused). Its endpoints come from the agents'
reports in etcd, through a watch. When a replica is placed on the host, the agent stops the mesh
unit before it starts the container (the unit is no longer wanted); when the replica leaves, the
unit comes back. So ``curl http://ANY-HOST:PORT/`` reaches the service, like Docker Swarm's
routing mesh, with no kernel rules.

Side effects (the proxy only): a listening socket, connections, etcd reads and a watch.
Run: ``python3 -m host.agent.mesh --app A --service S --port P`` (the environment of the agent).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import itertools
import logging
import os
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Iterable, Mapping

from common.store import EtcdConfig, Store, StoreError
from specs.cluster import ContainerStatus, Keys
from specs.cluster import endpoints as ready_replicas
from units.systemd import quote_args

log = logging.getLogger("fusion-mesh")

CONNECT_TIMEOUT = 2.0
BIND_WAIT = 60.0  # seconds to wait for a published port that a stopping container still holds
UNIT_PREFIX = "fusion-mesh-"


def mesh_unit(port: int) -> str:
    return f"{UNIT_PREFIX}{port}.service"


def is_mesh_unit(name: str) -> bool:
    return name.startswith(UNIT_PREFIX)


def mesh_routes(statuses: Iterable[ContainerStatus], own_host: str, local_services: set[tuple[str, str]],
                local_ports: set[int]) -> dict[int, tuple[str, str]]:
    """Which published ports ``own_host`` forwards, to which (app, service) (pure). A port is
    routed when a service publishes it on another host, no replica of that service is placed here
    and nothing placed here publishes the port itself. A port published by two different services
    is not routed. This host's own reports do not count: one of a container that was just removed
    is still there until the agent's next report."""
    seen: dict[int, set[tuple[str, str]]] = {}
    for s in statuses:
        if s.host == own_host:
            continue
        for p in s.ports:
            if p.protocol == "tcp":
                seen.setdefault(p.host_port, set()).add((s.app, s.service))
    return {
        port: next(iter(owners))
        for port, owners in sorted(seen.items())
        if len(owners) == 1 and port not in local_ports and not owners & local_services
    }


def render_mesh_unit(port: int, app: str, service: str) -> str:
    """The unit that runs the proxy for ``port`` (pure; names are quoted for systemd)."""
    args = ["/usr/bin/python3", "-m", "host.agent.mesh", "--app", app, "--service", service, "--port", str(port)]
    return (
        "[Unit]\n"
        f"Description=Fusion routing mesh: port {port} to {quote_args([f'{app}/{service}'], variables=False)} on other hosts\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n"
        "\n"
        "[Service]\n"
        "EnvironmentFile=-/etc/fusion/lab.env\n"
        "EnvironmentFile=-/etc/fusion/agent.env\n"
        f"ExecStart={quote_args(args)}\n"
        "Restart=always\n"
        "RestartSec=1\n"
    )


def mesh_units(routes: Mapping[int, tuple[str, str]]) -> dict[str, str]:
    """Unit name -> text for every routed port (pure)."""
    return {mesh_unit(port): render_mesh_unit(port, app, svc) for port, (app, svc) in routes.items()}


# --- the proxy ------------------------------------------------------------------------------------


class Endpoints:
    """The ready replicas of one service on other hosts, kept current from etcd."""

    def __init__(self, app: str, service: str, port: int, own_host: str) -> None:
        self.app, self.service, self.port, self.own_host = app, service, port, own_host
        self._lock = threading.Lock()
        self._addresses: list[str] = []
        self._turn = itertools.count()

    def update(self, statuses: list[ContainerStatus]) -> None:
        found = sorted({
            e.address for e in ready_replicas(statuses, self.app).get(self.service, [])
            if e.address and e.host != self.own_host and any(p.host_port == self.port for p in e.ports)
        })
        with self._lock:
            if found != self._addresses:
                log.info("endpoints for %s/%s: %s", self.app, self.service, ", ".join(found) or "none")
            self._addresses = found

    def in_turn(self) -> list[str]:
        """Every endpoint, starting with the next one in round-robin order."""
        with self._lock:
            addresses = list(self._addresses)
        if not addresses:
            return []
        k = next(self._turn) % len(addresses)
        return addresses[k:] + addresses[:k]


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def forward(client: socket.socket, endpoints: Endpoints) -> None:
    """Connect ``client`` to the first endpoint that accepts, and copy bytes both ways."""
    for address in endpoints.in_turn():
        try:
            upstream = socket.create_connection((address, endpoints.port), timeout=CONNECT_TIMEOUT)
        except OSError:
            continue
        upstream.settimeout(None)
        with upstream:
            back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
            back.start()
            _pipe(client, upstream)
            back.join()
        return
    log.warning("no ready replica of %s/%s for a connection", endpoints.app, endpoints.service)


class _Handler(socketserver.BaseRequestHandler):
    server: Server

    def handle(self) -> None:
        forward(self.request, self.server.endpoints)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, endpoints: Endpoints, bind_wait: float = BIND_WAIT) -> None:
        """Listen on ``port``; while a container that is stopping still holds it, try again for up
        to ``bind_wait`` seconds (the agent does not wait for that stop before starting us)."""
        self.endpoints = endpoints
        super().__init__(("0.0.0.0", port), _Handler, bind_and_activate=False)
        deadline = time.monotonic() + bind_wait
        while True:
            try:
                self.server_bind()
                break
            except OSError as e:
                if e.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                    self.server_close()
                    raise
                time.sleep(0.2)
        self.server_activate()


def follow(store: Store, endpoints: Endpoints, stop: threading.Event) -> None:
    """Keep ``endpoints`` current: a full read once the watch is open (so no change is missed
    between the two), then another on every status change."""
    while not stop.is_set():
        try:
            watch = store.watch(store.keys.status_prefix())
            try:
                endpoints.update(store.statuses())
                while not stop.is_set():
                    if watch.drain(5.0):
                        endpoints.update(store.statuses())
            finally:
                watch.cancel()
        except StoreError as e:
            log.error("%s", e)
            stop.wait(2.0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="fusion-mesh", description="Forward a published port to other hosts")
    p.add_argument("--app", required=True)
    p.add_argument("--service", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--etcd", default=os.environ.get("FUSION_ETCD"))
    p.add_argument("--host", default=os.environ.get("FUSION_HOST") or socket.gethostname())
    p.add_argument("--root", default=os.environ.get("FUSION_ROOT", "/fusion"))
    args = p.parse_args(argv)
    if not args.etcd:
        p.error("no etcd: pass --etcd URL or set FUSION_ETCD")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(message)s")
    endpoints = Endpoints(args.app, args.service, args.port, args.host)
    stop = threading.Event()
    store = Store(EtcdConfig.parse(args.etcd), Keys(args.root))
    threading.Thread(target=follow, args=(store, endpoints, stop), daemon=True, name="endpoints").start()
    with Server(args.port, endpoints) as server:
        log.info("port %d -> %s/%s on other hosts", args.port, args.app, args.service)
        try:
            server.serve_forever()
        finally:
            stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
