"""Service discovery across hosts (pure): a container reaches the services it depends on by name.

On one host the app's network (aardvark DNS, ``alias=SERVICE``) resolves a service that has a
replica there. For a dependency with no replica on this host, the agent adds
``--add-host=SERVICE:ADDRESS`` to the container, ADDRESS being the host of a ready replica (from
the agents' reports, :func:`specs.cluster.endpoints`); the dependency's published ports answer
there. So ``REDIS_HOST: redis`` works wherever redis runs, as long as it publishes its port.

The choice is sticky, so that containers are not restarted for nothing: the address used before
is kept while it still serves a ready replica, and also while no replica is ready (a dependency
that restarts does not restart its dependents); it changes when a different host takes over.
A change of address changes the rendered unit, so the agent restarts that container.

A container is first started only once every service it depends on can be reached (a replica on
this host, or an address from a ready one elsewhere): ``depends_on`` holds across hosts as it does
on one host, and a web front end never starts without its database's name (:func:`waiting_for`).
"""

from __future__ import annotations

from collections.abc import Mapping, Set

from specs.app import App
from specs.cluster import Endpoint


def remote_dependencies(
    app: App,
    service: str,
    local_services: Set[str],
    endpoints: Mapping[str, list[Endpoint]],
    previous: Mapping[str, str],
) -> dict[str, str]:
    """Dependency name -> the address ``service`` should reach it at (only dependencies without a
    replica on this host, and only once one has been ready somewhere)."""
    out: dict[str, str] = {}
    for dep in sorted(app.services[service].depends_on):
        if dep in local_services:
            continue
        ready = [e.address for e in endpoints.get(dep, []) if e.address]
        before = previous.get(dep)
        if before is not None and (before in ready or not ready):
            out[dep] = before
        elif ready:
            out[dep] = ready[0]
    return out


def add_host_args(addresses: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(f"--add-host={name}:{address}" for name, address in sorted(addresses.items()))


def waiting_for(app: App, service: str, local_services: Set[str], addresses: Mapping[str, str]) -> list[str]:
    """The dependencies of ``service`` that cannot be reached yet: no replica on this host and no
    address (nothing of them has been ready anywhere)."""
    return sorted(set(app.services[service].depends_on) - set(local_services) - set(addresses))
