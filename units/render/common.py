"""What the podman and docker renderers share: names, host options, the dependency plan, and the
mapping of restart policies, durations and resource limits to systemd. Pure: no I/O.

Names (Compose's): replica ``N`` (from 1) of service ``SVC`` in app ``APP`` is the container
``APP-SVC-N`` and the unit ``APP-SVC-N.service``; a named volume ``VOL`` is the engine volume
``APP_VOL`` (or its ``name:``) made by ``APP-VOL-volume.service``; a network ``NET`` is the engine
network ``APP_NET`` made by ``APP-NET-network.service``. Services that name no network join the
app's ``default`` network (``APP_default``), as in Compose.

Dependencies (``depends_on``), on the dependency's replicas that run on the same host:

* ``required: true`` (the default): ``Requires=`` + ``After=``. systemd.unit(5): with ``Requires=``
  this unit "will be stopped (or restarted) if one of the other units is explicitly stopped (or
  restarted)", so an explicit restart of the dependency already propagates.
* ``restart: true``: ``BindsTo=`` + ``After=`` instead. ``BindsTo=`` is ``Requires=`` plus: this unit
  also stops when the dependency stops for any reason (its container exited, it hit its start
  limit), not only on an explicit stop. ``PartOf=`` is not needed: it only propagates stop and
  restart, which ``BindsTo=`` already does.
* ``required: false``: ``Wants=`` + ``After=`` (``PartOf=`` too when ``restart: true``, so that
  restarts still propagate without making the dependency mandatory).
* ``condition: service_healthy``: the dependency's unit only becomes active once its container is
  healthy (podman: Quadlet's ``Notify=healthy``; docker: an ``ExecStartPost=`` that waits for
  ``docker inspect`` to say ``healthy``), so ``After=`` waits for health.
* ``condition: service_completed_successfully``: the dependency becomes ``Type=oneshot`` with
  ``RemainAfterExit=yes`` (the container runs in the foreground; the unit is active once it exited
  0), so ``After=`` waits for its successful completion.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from specs.app import App, Dependency, Mount, Port, Service
from specs.errors import InputError

__all__ = [
    "HostOptions",
    "RenderError",
    "Plan",
    "plan_app",
    "container_name",
    "volume_name",
    "network_name",
    "service_networks",
    "fmt_seconds",
    "go_duration",
    "DEFAULT_NETWORK",
]

DEFAULT_NETWORK = "default"
WANTED_BY = "multi-user.target"


class RenderError(InputError):
    """A spec value that cannot be written into a unit for this engine (exit code 2)."""


class HostOptions(BaseModel):
    """What the host adds to every container it runs.

    ``podman_args``/``docker_args``: extra ``podman run``/``docker run`` arguments (e.g.
    ``--cgroups=disabled``, which nspawn-booted hosts need; see MACHINE-NOTES). ``environment``:
    variables for service discovery, set in every container (the service's own win).
    ``podman``/``docker``: the engine binaries written into the units.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    podman_args: tuple[str, ...] = ()
    docker_args: tuple[str, ...] = ()
    environment: dict[str, str] = {}
    podman: str = "/usr/bin/podman"
    docker: str = "/usr/bin/docker"


def container_name(app: App, service: str, replica: int) -> str:
    return f"{app.name}-{service}-{replica}"


def volume_name(app: App, volume: str) -> str:
    """The engine name of a named volume (Compose's rule: its ``name:``; else the key itself for an
    external volume, ``APP_VOL`` for the app's own)."""
    decl = app.volumes.get(volume)
    if decl is not None and decl.name:
        return decl.name
    if decl is not None and decl.external:
        return volume
    return f"{app.name}_{volume}"


def network_name(app: App, network: str) -> str:
    """The engine name of a network (the same rule as :func:`volume_name`)."""
    decl = app.networks.get(network)
    if decl is not None and decl.name:
        return decl.name
    if decl is not None and decl.external:
        return network
    return f"{app.name}_{network}"


def is_external_volume(app: App, volume: str) -> bool:
    decl = app.volumes.get(volume)
    return decl is not None and decl.external


def is_external_network(app: App, network: str) -> bool:
    decl = app.networks.get(network)
    return decl is not None and decl.external


def publish_spec(p: Port) -> str:
    """``[IP:][HOST:]CONTAINER[/udp]``, the ``--publish`` syntax of podman and docker."""
    host_ip = f"[{p.host_ip}]" if p.host_ip and ":" in p.host_ip else (p.host_ip or "")
    published = str(p.published) if p.published is not None else ""
    target = f"{p.target}/udp" if p.protocol == "udp" else str(p.target)
    if host_ip:
        return f"{host_ip}:{published}:{target}"
    return f"{published}:{target}" if published else target


def mount_options(m: Mount) -> list[str]:
    """The ``-v SRC:DST:OPTIONS`` options of a volume or bind mount."""
    opts: list[str] = []
    if m.read_only:
        opts.append("ro")
    if m.type == "bind":
        if m.selinux:
            opts.append(m.selinux)
        if m.propagation:
            opts.append(m.propagation)
    if m.type == "volume" and m.nocopy:
        opts.append("nocopy")
    return opts


def tmpfs_spec(m: Mount) -> str:
    """``DST[:ro,size=N,mode=OCTAL]``, the ``--tmpfs`` syntax of podman and docker."""
    opts = (["ro"] if m.read_only else []) + ([f"size={m.tmpfs_size}"] if m.tmpfs_size else [])
    opts += [f"mode={m.tmpfs_mode:o}"] if m.tmpfs_mode is not None else []
    return m.target + (":" + ",".join(opts) if opts else "")


def service_networks(app: App, svc: Service, name: str) -> dict[str, list[str]]:
    """The networks a service joins (sorted), each with its DNS aliases (the service name first)."""
    if not svc.networks:
        return {DEFAULT_NETWORK: [name]}
    out: dict[str, list[str]] = {}
    for net in sorted(svc.networks):
        aliases = [name] + [a for a in svc.networks[net].aliases if a != name]
        out[net] = aliases
    return out


def uses_default_network(app: App) -> bool:
    return DEFAULT_NETWORK not in app.networks and any(not s.networks for s in app.services.values())


# -- durations -----------------------------------------------------------------------------------


def fmt_seconds(seconds: float) -> str:
    """A duration for systemd and for Go's ``time.ParseDuration``: ``10s``, ``1500ms``, ``250us``."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    ms = seconds * 1000
    if ms == int(ms):
        return f"{int(ms)}ms"
    return f"{max(1, round(seconds * 1_000_000))}us"


go_duration = fmt_seconds


# -- the dependency plan -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the renderers need to know about the whole app, computed once."""

    app: App
    replicas: dict[str, tuple[int, ...]]  # the replicas of each service on this host
    healthy: frozenset[str]  # services others wait on with service_healthy
    oneshot: frozenset[str]  # services others wait on with service_completed_successfully

    def local_units(self, service: str) -> list[str]:
        return [f"{container_name(self.app, service, n)}.service" for n in self.replicas.get(service, ())]


def plan_app(app: App, replicas: Mapping[str, Sequence[int]] | None = None) -> Plan:
    """The plan for rendering ``app`` on one host; ``replicas`` None means every replica."""
    chosen: dict[str, tuple[int, ...]] = {}
    for name, svc in app.services.items():
        if replicas is None:
            chosen[name] = tuple(range(1, svc.deploy.replicas + 1))
        else:
            wanted = replicas.get(name, ())
            bad = [n for n in wanted if n < 1]
            if bad:
                raise RenderError(f"services.{name}: replica numbers start at 1, not {bad[0]}")
            chosen[name] = tuple(sorted(set(wanted)))
    if replicas is not None:
        unknown = sorted(set(replicas) - set(app.services))
        if unknown:
            raise RenderError(f"no service named {unknown[0]!r} in app {app.name!r}")
    healthy: set[str] = set()
    oneshot: set[str] = set()
    for svc in app.services.values():
        for dep, d in svc.depends_on.items():
            if d.condition == "service_healthy":
                healthy.add(dep)
            elif d.condition == "service_completed_successfully":
                oneshot.add(dep)
    return Plan(app, chosen, frozenset(healthy), frozenset(oneshot))


def dependency_lines(plan: Plan, name: str, svc: Service) -> tuple[list[tuple[str, str]], list[str]]:
    """``[Unit]`` lines for ``depends_on`` (see the module docstring) and warnings."""
    lines: list[tuple[str, str]] = []
    warnings: list[str] = []
    for dep in sorted(svc.depends_on):
        d: Dependency = svc.depends_on[dep]
        units = plan.local_units(dep)
        if not units:
            warnings.append(
                f"{name}: depends on {dep}, which has no replica on this host: no start ordering on this host"
            )
            continue
        for unit in units:
            if not d.required:
                lines.append(("Wants", unit))
                if d.restart:
                    lines.append(("PartOf", unit))
            elif d.restart:
                lines.append(("BindsTo", unit))
            else:
                lines.append(("Requires", unit))
            lines.append(("After", unit))
    for dep in sorted(svc.depends_on):
        hc = plan.app.services[dep].healthcheck
        if svc.depends_on[dep].condition == "service_healthy" and hc is not None and hc.disable:
            warnings.append(f"{name}: waits for {dep} to be healthy, but {dep}'s health check is disabled")
    return lines, warnings


# -- restart and limits --------------------------------------------------------------------------


def restart_lines(name: str, svc: Service, *, oneshot: bool) -> tuple[list[tuple[str, str, str]], list[str]]:
    """``(section, key, value)`` lines for the restart policy, and warnings.

    ``deploy.restart_policy`` wins over ``restart`` (the Compose Specification's rule).
    ``unless-stopped`` is ``always``: systemd never restarts a unit that was stopped on purpose.
    ``RestartSec=`` is the policy's ``delay``, else 1 s (systemd's 100 ms would spin on a broken
    image). A restart without a retry limit never gives up (``StartLimitIntervalSec=0``), as Docker's does;
    ``on-failure:N`` / ``max_attempts: N`` allow N restarts (``StartLimitBurst=N+1``) within
    ``window`` (default one hour).
    """
    warnings: list[str] = []
    policy = svc.deploy.restart_policy
    max_attempts: int | None
    if policy is not None:
        restart = {"none": "no", "on-failure": "on-failure", "any": "always"}[policy.condition]
        delay = policy.delay
        max_attempts = policy.max_attempts
        window = policy.window
    else:
        restart = {"no": "no", "always": "always", "unless-stopped": "always", "on-failure": "on-failure"}[
            svc.restart
        ]
        delay = 1.0
        max_attempts = svc.restart_max_retries
        window = None
    if oneshot and restart == "always":
        warnings.append(
            f"{name}: runs to completion (others wait for service_completed_successfully), "
            "so it is restarted only on failure"
        )
        restart = "on-failure"
    out: list[tuple[str, str, str]] = [("Service", "Restart", restart)]
    if restart == "no":
        return out, warnings
    out.append(("Service", "RestartSec", fmt_seconds(delay)))
    if max_attempts is None:
        out.append(("Unit", "StartLimitIntervalSec", "0"))
    else:
        out.append(("Unit", "StartLimitIntervalSec", fmt_seconds(window) if window else "1h"))
        out.append(("Unit", "StartLimitBurst", str(max_attempts + 1)))
    return out, warnings


def resource_lines(svc: Service) -> list[tuple[str, str]]:
    """``[Service]`` resource-control lines: the container runs inside the unit's cgroup."""
    limits = svc.deploy.resources.limits
    out: list[tuple[str, str]] = []
    if limits.memory is not None:
        out.append(("MemoryMax", str(limits.memory)))
    if limits.cpus is not None:
        out.append(("CPUQuota", f"{max(1, round(limits.cpus * 100))}%"))
    if limits.pids is not None:
        out.append(("TasksMax", str(limits.pids)))
    reserved = svc.deploy.resources.reservations
    if reserved.memory is not None:
        out.append(("MemoryLow", str(reserved.memory)))
    return out


def start_timeout(svc: Service, *, waits_for_health: bool) -> int | None:
    """``TimeoutStartSec=`` when waiting for health may take longer than systemd's 90 s default."""
    hc = svc.healthcheck
    if not waits_for_health or hc is None:
        return None
    need = hc.start_period + (max(hc.retries, 1) + 1) * (hc.interval + hc.timeout) + 30
    return math.ceil(need) if need > 90 else None


def stop_timeout(svc: Service) -> int:
    """The engine's stop timeout in whole seconds (``stop_grace_period``, rounded up)."""
    return math.ceil(svc.stop_grace_period)


def timeout_stop_sec(svc: Service) -> int | None:
    """``TimeoutStopSec=`` when the grace period plus removal may pass systemd's 90 s default."""
    need = stop_timeout(svc) + 30
    return need if need > 90 else None


def description(app: App, name: str, svc: Service, replica: int) -> str:
    return f"{app.name}: {name} replica {replica} ({svc.image})"


def check_key(what: str, key: str) -> None:
    """Environment names and label keys are written as ``K=V``: a ``=`` in K would move the split."""
    if "=" in key or not key:
        raise RenderError(f"{what} {key!r}: must be non-empty and cannot contain '='")


def fusion_labels(app: App, name: str, replica: int) -> dict[str, str]:
    return {"fusion.app": app.name, "fusion.service": name, "fusion.replica": str(replica)}


def merged_environment(svc: Service, host: HostOptions) -> dict[str, str]:
    env = {**host.environment, **svc.environment}
    return {k: env[k] for k in sorted(env)}
