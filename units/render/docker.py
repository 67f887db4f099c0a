"""The docker engine: a Fusion service → a systemd ``.service`` that runs ``docker run`` in the
foreground. Pure: no I/O.

The unit (per replica ``APP-SVC-N``)::

    [Unit]     Wants/After=network-online.target, Requires/After=docker.service, depends_on
               lines (see units.render.common), the volume/network units it uses
    [Service]  ExecStartPre=-docker rm -f NAME        (a leftover container of the same name)
               ExecStart=docker run --rm --name NAME ...options IMAGE [COMMAND...]
               ExecStartPost=...                       (extra networks; waiting for health)
               ExecStop=docker stop -t GRACE NAME
               Restart=, RestartSec=, SyslogIdentifier=NAME
    [Install]  WantedBy=multi-user.target

Every command line is built with :meth:`UnitFile.add_cmdline`, which quotes each argument and
escapes ``%`` and ``$``, so a value can never add a directive, a specifier or a variable.

Where docker differs from podman: resource limits are ``docker run`` options (``--memory``,
``--cpus``, ``--pids-limit``, ``--memory-reservation``), since the container runs under dockerd,
not in the unit's cgroup; ``docker run`` joins one network, the others are connected by an
``ExecStartPost=`` once the container exists; a health-gated dependency (``service_healthy``) is
an ``ExecStartPost=`` that waits until ``docker inspect`` says ``healthy`` (bounded by
``TimeoutStartSec=``); the entrypoint is one program (``--entrypoint``), its other words go before
the command. Named volumes and networks get their own oneshot units (``APP-VOL-volume.service``
running ``docker volume create``, ``APP-NET-network.service`` running ``docker network create``
unless the network exists).
"""

from __future__ import annotations

import shlex

from specs.app import App, Service
from units.render.common import (
    WANTED_BY,
    HostOptions,
    Plan,
    check_key,
    container_name,
    dependency_lines,
    description,
    fmt_seconds,
    fusion_labels,
    is_external_network,
    is_external_volume,
    merged_environment,
    mount_options,
    network_name,
    publish_spec,
    restart_lines,
    service_networks,
    start_timeout,
    stop_timeout,
    timeout_stop_sec,
    tmpfs_spec,
    volume_name,
)
from units.systemd import escape_specifiers
from units.unitfile import UnitFile

__all__ = ["render_container", "render_volume", "render_network", "volume_unit_name", "network_unit_name"]

DOCKER_SERVICE = "docker.service"
SH = "/bin/sh"


def volume_unit_name(app: App, vol: str) -> str:
    return f"{app.name}-{vol}-volume.service"


def network_unit_name(app: App, net: str) -> str:
    return f"{app.name}-{net}-network.service"


def _common_unit(unit: UnitFile, text: str) -> None:
    unit.add("Unit", "Description", escape_specifiers(text))
    unit.add("Unit", "Wants", "network-online.target")
    unit.add("Unit", "After", "network-online.target")
    unit.add("Unit", "Requires", DOCKER_SERVICE)
    unit.add("Unit", "After", DOCKER_SERVICE)


def _health_shell(svc: Service) -> str | None:
    """docker's ``--health-cmd`` is always a shell command."""
    hc = svc.healthcheck
    if hc is None or hc.test is None:
        return None
    kind, args = hc.test[0], hc.test[1:]
    return args[0] if kind == "CMD-SHELL" else shlex.join(args)


def run_args(plan: Plan, name: str, replica: int, host: HostOptions) -> tuple[list[str], list[str], list[str]]:
    """``(docker run argv, networks to connect after start, warnings)``."""
    app = plan.app
    svc = app.services[name]
    cname = container_name(app, name, replica)
    warnings: list[str] = []
    args = [host.docker, "run", "--rm", "--name", cname]
    nets = service_networks(app, svc, name)
    # `docker run` joins one network; take one that is not internal so that ports can be published
    order = sorted(nets, key=lambda n: (app.networks[n].internal if n in app.networks else False, n))
    first, *rest = order
    args += ["--network", network_name(app, first)]
    for alias in nets[first]:
        args += ["--network-alias", alias]
    for key, value in merged_environment(svc, host).items():
        check_key(f"services.{name}.environment: variable", key)
        args += ["--env", f"{key}={value}"]
    labels = {**svc.labels, **fusion_labels(app, name, replica)}
    for key in sorted(labels):
        check_key(f"services.{name}.labels: key", key)
        args += ["--label", f"{key}={labels[key]}"]
    for p in svc.ports:
        args += ["--publish", publish_spec(p)]
    for m in svc.volumes:
        opts = mount_options(m)
        if m.type == "tmpfs":
            args += ["--tmpfs", tmpfs_spec(m)]
            continue
        if m.type == "volume" and m.source is None:
            source = ""
        elif m.type == "volume":
            assert m.source is not None
            source = volume_name(app, m.source)
        else:
            assert m.source is not None
            source = m.source
        spec = f"{source}:{m.target}" if source else m.target
        if opts and source:
            spec += ":" + ",".join(opts)
        elif opts:
            spec = f"type=volume,destination={m.target}" + "".join(f",{o}" for o in opts)
            args += ["--mount", spec]
            continue
        args += ["--volume", spec]
    hc = svc.healthcheck
    if hc is not None:
        if hc.disable:
            args.append("--no-healthcheck")
        else:
            shell = _health_shell(svc)
            if shell is not None:
                args += ["--health-cmd", shell]
            if hc.interval:
                args += ["--health-interval", fmt_seconds(hc.interval)]
            if hc.timeout:
                args += ["--health-timeout", fmt_seconds(hc.timeout)]
            if hc.retries:
                args += ["--health-retries", str(hc.retries)]
            if hc.start_period:
                args += ["--health-start-period", fmt_seconds(hc.start_period)]
    if svc.user:
        args += ["--user", svc.user]
    if svc.working_dir:
        args += ["--workdir", svc.working_dir]
    if svc.read_only:
        args.append("--read-only")
    if svc.init:
        args.append("--init")
    for cap in svc.cap_add:
        args += ["--cap-add", cap]
    for cap in svc.cap_drop:
        args += ["--cap-drop", cap]
    if svc.stop_signal:
        args += ["--stop-signal", svc.stop_signal]
    args += ["--stop-timeout", str(stop_timeout(svc))]
    if svc.hostname:
        args += ["--hostname", svc.hostname]
    limits, reserved = svc.deploy.resources.limits, svc.deploy.resources.reservations
    if limits.memory is not None:
        args += ["--memory", str(limits.memory)]
    if limits.cpus is not None:
        args += ["--cpus", f"{limits.cpus:g}"]
    if limits.pids is not None:
        args += ["--pids-limit", str(limits.pids)]
    if reserved.memory is not None:
        args += ["--memory-reservation", str(reserved.memory)]
    args += list(host.docker_args)
    command = list(svc.command) if svc.command is not None else None
    if svc.entrypoint is not None:
        args += ["--entrypoint", svc.entrypoint[0] if svc.entrypoint else ""]
        extra = svc.entrypoint[1:]
        if extra:
            if command is None:
                warnings.append(
                    f"{name}: docker's --entrypoint takes one program; with no command given, the "
                    "image's own command is replaced by the entrypoint's other words"
                )
            command = extra + (command or [])
    args.append(svc.image)
    if command:
        args += command
    return args, rest, warnings


def render_container(plan: Plan, name: str, replica: int, host: HostOptions) -> tuple[UnitFile, list[str]]:
    """The ``APP-SVC-N.service`` unit for one replica, and warnings."""
    app = plan.app
    svc = app.services[name]
    cname = container_name(app, name, replica)
    unit = UnitFile(f"{cname}.service")
    _common_unit(unit, description(app, name, svc, replica))
    deps, warnings = dependency_lines(plan, name, svc)
    for key, value in deps:
        unit.add("Unit", key, value)
    for m in svc.volumes:
        if m.type == "volume" and m.source and not is_external_volume(app, m.source):
            unit.add("Unit", "Requires", volume_unit_name(app, m.source))
            unit.add("Unit", "After", volume_unit_name(app, m.source))
    nets = service_networks(app, svc, name)
    for net in nets:
        if not is_external_network(app, net):
            unit.add("Unit", "Requires", network_unit_name(app, net))
            unit.add("Unit", "After", network_unit_name(app, net))

    oneshot = name in plan.oneshot
    args, later_networks, more = run_args(plan, name, replica, host)
    warnings += more
    unit.add("Service", "Type", "oneshot" if oneshot else "simple")
    if oneshot:
        unit.add("Service", "RemainAfterExit", "yes")
    unit.add_cmdline("Service", "ExecStartPre", ["-" + host.docker, "rm", "-f", cname])
    unit.add_cmdline("Service", "ExecStart", args)
    for net in later_networks:
        connect = shlex.join(
            [host.docker, "network", "connect", *(f"--alias={a}" for a in nets[net]), network_name(app, net), cname]
        )
        script = f"for i in $(seq 100); do {connect} && exit 0; sleep 0.2; done; exit 1"
        unit.add_cmdline("Service", "ExecStartPost", [SH, "-c", script])
    waits = name in plan.healthy and not oneshot
    if waits:
        inspect = shlex.join([host.docker, "inspect", "-f", "{{.State.Health.Status}}", cname])
        script = f'until [ "$({inspect} 2>/dev/null)" = healthy ]; do sleep 1; done'
        unit.add_cmdline("Service", "ExecStartPost", [SH, "-c", script])
    unit.add_cmdline("Service", "ExecStop", [host.docker, "stop", "-t", str(stop_timeout(svc)), cname])
    unit.add("Service", "SyslogIdentifier", cname)
    restart, restart_warnings = restart_lines(name, svc, oneshot=oneshot)
    warnings += restart_warnings
    for section, key, value in restart:
        unit.add(section, key, value)
    timeout = start_timeout(svc, waits_for_health=waits)
    if timeout:
        unit.add("Service", "TimeoutStartSec", str(timeout))
    stop = timeout_stop_sec(svc)
    if stop:
        unit.add("Service", "TimeoutStopSec", str(stop))
    unit.add("Install", "WantedBy", WANTED_BY)
    return unit, warnings


def render_volume(app: App, vol: str, host: HostOptions) -> UnitFile:
    decl = app.volumes[vol]
    unit = UnitFile(volume_unit_name(app, vol))
    _common_unit(unit, f"{app.name}: volume {vol}")
    args = [host.docker, "volume", "create"]
    if decl.driver:
        args += ["--driver", decl.driver]
    labels = {**decl.labels, "fusion.app": app.name}
    for k in sorted(labels):
        check_key(f"volumes.{vol}.labels: key", k)
        args += ["--label", f"{k}={labels[k]}"]
    for k in sorted(decl.driver_opts):
        args += ["--opt", f"{k}={decl.driver_opts[k]}"]
    args.append(volume_name(app, vol))
    unit.add("Service", "Type", "oneshot")
    unit.add("Service", "RemainAfterExit", "yes")
    unit.add_cmdline("Service", "ExecStart", args)  # `docker volume create` is idempotent
    unit.add("Service", "SyslogIdentifier", "%N")
    return unit


def render_network(app: App, net: str, host: HostOptions) -> UnitFile:
    decl = app.networks.get(net)
    unit = UnitFile(network_unit_name(app, net))
    _common_unit(unit, f"{app.name}: network {net}")
    name = network_name(app, net)
    args = [host.docker, "network", "create"]
    labels = {"fusion.app": app.name}
    if decl is not None:
        if decl.driver:
            args += ["--driver", decl.driver]
        if decl.internal:
            args.append("--internal")
        if decl.enable_ipv6:
            args.append("--ipv6")
        for k in sorted(decl.driver_opts):
            args += ["--opt", f"{k}={decl.driver_opts[k]}"]
        labels = {**decl.labels, **labels}
    for k in sorted(labels):
        check_key(f"networks.{net}.labels: key", k)
        args += ["--label", f"{k}={labels[k]}"]
    args.append(name)
    inspect = shlex.join([host.docker, "network", "inspect", name])
    script = f"{inspect} >/dev/null 2>&1 || exec {shlex.join(args)}"
    unit.add("Service", "Type", "oneshot")
    unit.add("Service", "RemainAfterExit", "yes")
    unit.add_cmdline("Service", "ExecStart", [SH, "-c", script])
    unit.add("Service", "SyslogIdentifier", "%N")
    return unit
