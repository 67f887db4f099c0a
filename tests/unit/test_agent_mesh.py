"""The routing mesh's pure half: which ports a host forwards, the unit that does it, and the
proxy's round robin (a real socket pair for the forwarding itself)."""

from __future__ import annotations

import socket
import threading

import pytest

from host.agent import mesh, reconcile
from specs.cluster import ContainerStatus, PublishedPort
from units.systemd import unescape_specifiers
from units.unitfile import UnitFile


def status(app: str, service: str, host: str, port: int | None, ready: bool = True,
           protocol: str = "tcp", address: str | None = None) -> ContainerStatus:
    ports = [] if port is None else [PublishedPort(container_port=port, host_port=port, protocol=protocol)]
    return ContainerStatus(app=app, service=service, replica=1, host=host, unit=f"{app}-{service}-1.service",
                           spec_revision=1, service_hash="h", state="active" if ready else "failed",
                           health="healthy" if ready else "none", address=address or f"10.0.0.{host[-1]}", ports=ports)


GUESTBOOK = [status("guestbook", "web", "h1", 8080), status("guestbook", "web", "h2", 8080),
             status("guestbook", "redis", "h1", 6379)]


def test_a_host_without_a_replica_routes_the_published_ports() -> None:
    assert mesh.mesh_routes(GUESTBOOK, "h0", set(), set()) == {6379: ("guestbook", "redis"), 8080: ("guestbook", "web")}


def test_a_host_with_a_replica_does_not_route_that_service() -> None:
    local = {("guestbook", "web")}
    assert mesh.mesh_routes(GUESTBOOK, "h0", local, {8080}) == {6379: ("guestbook", "redis")}


def test_a_port_used_here_or_by_two_services_is_not_routed() -> None:
    other = [*GUESTBOOK, status("shop", "api", "h3", 8080), status("dns", "udp", "h3", 5353, protocol="udp")]
    assert mesh.mesh_routes(other, "h0", set(), set()) == {6379: ("guestbook", "redis")}
    assert mesh.mesh_routes(GUESTBOOK, "h0", set(), {6379}) == {8080: ("guestbook", "web")}


def test_the_hosts_own_reports_route_nothing() -> None:
    # h1's report of a web replica that was just removed from h1: h1 must not route 8080 to itself
    assert mesh.mesh_routes([status("guestbook", "web", "h1", 8080)], "h1", set(), set()) == {}
    assert mesh.mesh_routes(GUESTBOOK, "h1", set(), set()) == {8080: ("guestbook", "web")}


def test_no_published_port_no_route() -> None:
    assert mesh.mesh_routes([status("a", "worker", "h1", None)], "h0", set(), set()) == {}


def test_the_mesh_unit_parses_and_runs_the_proxy() -> None:
    units = mesh.mesh_units({8080: ("guestbook", "web")})
    assert list(units) == ["fusion-mesh-8080.service"]
    unit = UnitFile.parse(units["fusion-mesh-8080.service"])
    assert unit.render() == units["fusion-mesh-8080.service"]
    assert unit.lookup_last_args("Service", "ExecStart") == [
        "/usr/bin/python3", "-m", "host.agent.mesh", "--app", "guestbook", "--service", "web", "--port", "8080"]
    assert reconcile.unit_dependencies(units["fusion-mesh-8080.service"]) == {"network-online.target"}


def test_names_cannot_add_a_directive_or_a_specifier() -> None:
    text = mesh.render_mesh_unit(80, "a%n\nExecStartPre=/bin/false", "s")
    unit = UnitFile.parse(text)
    assert "ExecStartPre" not in unit.keys("Service")
    args = unit.lookup_last_args("Service", "ExecStart")
    assert args is not None and unescape_specifiers(args[4]) == "a%n\nExecStartPre=/bin/false"
    assert "%n" not in text.replace("%%n", "")


def test_endpoints_are_ready_replicas_elsewhere_in_turn() -> None:
    eps = mesh.Endpoints("guestbook", "web", 8080, own_host="h3")
    eps.update([*GUESTBOOK, status("guestbook", "web", "h3", 8080), status("guestbook", "web", "h4", 8080, ready=False)])
    assert eps.in_turn() == ["10.0.0.1", "10.0.0.2"]
    assert eps.in_turn() == ["10.0.0.2", "10.0.0.1"]
    eps.update([])
    assert eps.in_turn() == []


def test_the_proxy_forwards_to_the_first_endpoint_that_accepts() -> None:
    with socket.create_server(("127.0.0.1", 0)) as upstream:
        port = upstream.getsockname()[1]

        def echo() -> None:
            try:
                conn, _ = upstream.accept()
            except OSError:  # the test is over: the socket was closed
                return
            with conn:
                conn.sendall(conn.recv(100).upper())

        threading.Thread(target=echo, daemon=True).start()
        eps = mesh.Endpoints("a", "s", port, own_host="h0")
        # nothing listens on 127.0.0.3: that connection is refused and the next endpoint is tried
        eps.update([status("a", "s", "h9", port, address="127.0.0.3"), status("a", "s", "h1", port, address="127.0.0.1")])
        server = mesh.Server(0, eps)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            for _ in range(2):  # whichever endpoint comes first in turn, the answer comes from 127.0.0.1
                with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5) as c:
                    c.sendall(b"hello")
                    c.shutdown(socket.SHUT_WR)
                    assert c.recv(100) == b"HELLO"
                threading.Thread(target=echo, daemon=True).start()
        finally:
            server.shutdown()
            server.server_close()


def test_the_proxy_waits_for_a_port_that_a_stopping_container_still_holds() -> None:
    holder = socket.create_server(("0.0.0.0", 0))
    port = holder.getsockname()[1]
    threading.Timer(0.5, holder.close).start()  # the container lets go of the port
    server = mesh.Server(port, mesh.Endpoints("a", "s", port, own_host="h0"), bind_wait=10)
    server.server_close()
    assert server.server_address[1] == port


def test_the_proxy_gives_up_on_a_port_held_too_long() -> None:
    with socket.create_server(("0.0.0.0", 0)) as holder:
        port = holder.getsockname()[1]
        with pytest.raises(OSError):
            mesh.Server(port, mesh.Endpoints("a", "s", port, own_host="h0"), bind_wait=0.3)
