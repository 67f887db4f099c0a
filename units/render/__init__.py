"""An app spec → the systemd units that run it on one host, for the podman or the docker engine.

Pure: values in, text out, no I/O. Output is deterministic (files sorted by name, lines in a fixed
order). The host agent calls :func:`render_service` per placement; ``fusion units render`` calls
:func:`render_app`.

    result = render_app(app, engine="podman", replicas={"web": [1], "redis": [1]}, host=HostOptions(...))
    result.files     # {"guestbook-web-1.service": "...", "guestbook-redis-data-volume.service": ...}
    result.quadlet   # podman only: the Quadlet files they were made from ("guestbook-web-1.container")
    result.warnings

See :mod:`units.render.common` for names and dependencies, :mod:`units.render.podman` and
:mod:`units.render.docker` for each engine's mapping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from specs.app import App
from units.render import docker, podman
from units.render.common import (
    HostOptions,
    Plan,
    RenderError,
    container_name,
    plan_app,
    service_networks,
)

__all__ = [
    "Engine",
    "HostOptions",
    "RenderError",
    "RenderResult",
    "render_app",
    "render_service",
    "container_name",
]

Engine = Literal["podman", "docker"]
ENGINES: tuple[Engine, ...] = ("podman", "docker")


class RenderResult(BaseModel):
    """Unit files to install (file name → text, sorted), the Quadlet files they were made from
    (podman engine), and warnings for a person."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    files: dict[str, str]
    quadlet: dict[str, str] = {}
    warnings: list[str] = []


def _check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise RenderError(f"unknown engine {engine!r}: use podman or docker")


def _used_storage(plan: Plan, services: list[str]) -> tuple[list[str], list[str]]:
    """The app's named volumes and networks (non-external) that these services use, sorted."""
    app = plan.app
    vols: set[str] = set()
    nets: set[str] = set()
    for name in services:
        svc = app.services[name]
        for m in svc.volumes:
            if m.type == "volume" and m.source and not app.volumes[m.source].external:
                vols.add(m.source)
        for net in service_networks(app, svc, name):
            decl = app.networks.get(net)
            if decl is None or not decl.external:
                nets.add(net)
    return sorted(vols), sorted(nets)


def _render(plan: Plan, engine: Engine, host: HostOptions, only: str | None) -> RenderResult:
    app = plan.app
    files: dict[str, str] = {}
    quadlet: dict[str, str] = {}
    warnings: list[str] = []
    names = [n for n in sorted(app.services) if plan.replicas.get(n) and (only is None or n == only)]
    vols, nets = _used_storage(plan, names)
    if engine == "podman":
        ctx = podman.quadlet_context(plan, host)
        for vol in vols:
            src, svc_unit, w = podman.render_volume(app, vol, ctx)
            quadlet[src.filename], files[svc_unit.filename] = src.render(), svc_unit.render()
            warnings += w
        for net in nets:
            src, svc_unit, w = podman.render_network(app, net, ctx)
            quadlet[src.filename], files[svc_unit.filename] = src.render(), svc_unit.render()
            warnings += w
        for name in names:
            for n in plan.replicas[name]:
                src, svc_unit, w = podman.render_container(plan, name, n, host, ctx)
                quadlet[src.filename], files[svc_unit.filename] = src.render(), svc_unit.render()
                warnings += w
    else:
        for vol in vols:
            u = docker.render_volume(app, vol, host)
            files[u.filename] = u.render()
        for net in nets:
            u = docker.render_network(app, net, host)
            files[u.filename] = u.render()
        for name in names:
            for n in plan.replicas[name]:
                u, w = docker.render_container(plan, name, n, host)
                files[u.filename] = u.render()
                warnings += w
    return RenderResult(
        files=dict(sorted(files.items())),
        quadlet=dict(sorted(quadlet.items())),
        warnings=list(dict.fromkeys(warnings)),
    )


def render_app(
    app: App,
    *,
    engine: Engine = "podman",
    replicas: Mapping[str, Sequence[int]] | None = None,
    host: HostOptions | None = None,
) -> RenderResult:
    """Every unit for the replicas of ``app`` that run on one host (``replicas``: service → replica
    numbers from 1; None means all of them), with the volumes and networks they use."""
    _check_engine(engine)
    return _render(plan_app(app, replicas), engine, host or HostOptions(), None)


def render_service(
    app: App,
    service: str,
    *,
    engine: Engine = "podman",
    replicas: Mapping[str, Sequence[int]] | None = None,
    host: HostOptions | None = None,
) -> RenderResult:
    """The units of one service's local replicas (and its volumes and networks), for the host
    agent. ``replicas`` says which replicas of every service are on this host, so that depends_on
    only names local units; None means all."""
    _check_engine(engine)
    if service not in app.services:
        raise RenderError(f"no service named {service!r} in app {app.name!r}")
    return _render(plan_app(app, replicas), engine, host or HostOptions(), service)

