"""The podman engine: a Fusion service → a Quadlet ``.container`` file → (Fusion's Quadlet) → a
``.service`` unit, so the result has exactly Podman Quadlet 5.4's semantics. Named volumes and
networks become ``.volume``/``.network`` files and their ``-volume``/``-network`` services the same
way. Pure: no I/O.

Escaping. Quadlet copies the values of a ``.container`` file into ``ExecStart=`` as they are: it
re-quotes words but keeps ``%`` and ``$`` (Quadlet users write ``%h`` on purpose). Fusion's values
are literal data, so every value written into the ``.container`` file has ``%`` as ``%%`` and ``$`` as
``$$``; keys that Quadlet splits into words (``Environment=``, ``Label=``, ``Exec=``,
``PodmanArgs=``) get systemd quoting on top (:func:`units.systemd.quote_arg`). A bind-mount source
also lands in ``RequiresMountsFor=`` (where ``$`` is not special and whitespace separates paths), so
it may not hold ``$``, quotes, backslashes or whitespace. Quadlet drops empty words, so a command
argument cannot be empty.

Mapping (Compose → ``[Container]``): image → Image; the container name → ContainerName; command →
Exec; entrypoint → Entrypoint (a JSON array, which podman's ``--entrypoint`` reads as argv);
environment (and the host's discovery variables) → Environment (sorted); ports → PublishPort;
volumes → Volume (named volumes as ``APP-VOL.volume``) and Tmpfs; networks → Network
(``APP-NET.network:alias=SVC,alias=...``); healthcheck → HealthCmd (a JSON array without the
``CMD`` marker, or ``["CMD-SHELL", "..."]``, the forms podman reads without re-splitting) and
HealthInterval/Timeout/Retries/StartPeriod; user → User/Group; working_dir → WorkingDir; read_only
→ ReadOnly; init → RunInit; cap_add/cap_drop → AddCapability/DropCapability; labels (and
``fusion.app/service/replica``) → Label; stop_signal → StopSignal; stop_grace_period → StopTimeout;
hostname → HostName; the host's extra arguments → PodmanArgs. ``[Service]``: restart policy,
resource limits (``MemoryMax=``, ``CPUQuota=``, ``TasksMax=``, ``MemoryLow=``: the container runs
in the unit's cgroup), ``ExecStartPre=mkdir -p`` for bind sources (Compose's create_host_path).
``[Install] WantedBy=multi-user.target``.
"""

from __future__ import annotations

import json
import re
import shlex

from specs.app import App, Healthcheck, Mount, Service
from units import systemd
from units.quadlet.common import QuadletContext, UnitInfo
from units.quadlet.container import convert_container
from units.quadlet.network import convert_network
from units.quadlet.volume import convert_volume
from units.render.common import (
    DEFAULT_NETWORK,
    WANTED_BY,
    HostOptions,
    Plan,
    RenderError,
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
    resource_lines,
    restart_lines,
    service_networks,
    start_timeout,
    stop_timeout,
    timeout_stop_sec,
    tmpfs_spec,
    uses_default_network,
    volume_name,
)
from units.unitfile import UnitFile

__all__ = [
    "container_file",
    "volume_file",
    "network_file",
    "quadlet_context",
    "render_container",
    "render_volume",
    "render_network",
]

C = "Container"
MKDIR = "/usr/bin/mkdir"
_BAD_BIND = set(" \t\"'\\$")


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Words that need neither quoting nor escaping (the common case, checked fast).
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_./:=@+,\-\[\]{}()*?!#&<>|^~`]+")
_SIMPLE_QUOTED = re.compile(r"[ !#-&(-\[\]-~]*")  # printable ASCII without quotes and backslashes


def _raw(value: str, what: str) -> str:
    """A value Quadlet copies into ``ExecStart=`` unsplit: ``%`` and ``$`` made literal."""
    if _CONTROL.search(value):
        raise RenderError(f"{what}: control characters cannot be written into a unit: {value!r}")
    if value != value.strip(systemd.GO_SPACE):
        raise RenderError(f"{what}: cannot start or end with whitespace: {value!r}")
    return value.replace("%", "%%").replace("$", "$$")


def _word(value: str, what: str) -> str:
    """One word of a key that Quadlet splits (``Environment=``, ``Label=``, ``Exec=``...)."""
    if _PLAIN_WORD.fullmatch(value):
        return value
    if value == "":
        raise RenderError(f"{what}: Quadlet drops empty arguments, so one cannot be passed")
    if _SIMPLE_QUOTED.fullmatch(value):  # spaces, %, $ but nothing to backslash-escape
        return '"' + value.replace("%", "%%").replace("$", "$$") + '"'
    return systemd.quote_arg(value, specifiers=True, variables=True)


def _words(values: list[str], what: str) -> str:
    return " ".join(_word(v, what) for v in values)


def _unit_name(app: App, kind: str, name: str) -> str:
    return f"{app.name}-{name}.{kind}"


def quadlet_context(plan: Plan, host: HostOptions) -> QuadletContext:
    """Every Quadlet file the app's containers may refer to, with its service and engine names."""
    app = plan.app
    units: dict[str, UnitInfo] = {}
    for vol, decl in app.volumes.items():
        if not decl.external:
            units[_unit_name(app, "volume", vol)] = UnitInfo(
                service_name=f"{app.name}-{vol}-volume", resource_name=volume_name(app, vol)
            )
    nets = list(app.networks) + ([DEFAULT_NETWORK] if uses_default_network(app) else [])
    for net in nets:
        decl_net = app.networks.get(net)
        if decl_net is None or not decl_net.external:
            units[_unit_name(app, "network", net)] = UnitInfo(
                service_name=f"{app.name}-{net}-network", resource_name=network_name(app, net)
            )
    for name, replicas in plan.replicas.items():
        for n in replicas:
            cname = container_name(app, name, n)
            units[f"{cname}.container"] = UnitInfo(service_name=cname, resource_name=cname)
    return QuadletContext(units=units, podman=host.podman, path_exists=lambda _path: True)


# -- .container ------------------------------------------------------------------------------------


def _volume_line(app: App, m: Mount, what: str) -> tuple[str, str] | None:
    """``(key, value)`` for one mount: ``Volume=`` or ``Tmpfs=`` (values not yet escaped)."""
    opts = mount_options(m)
    if m.type == "tmpfs":
        return "Tmpfs", tmpfs_spec(m)
    if m.type == "bind":
        assert m.source is not None
        if _BAD_BIND & set(m.source):
            raise RenderError(
                f"{what}: bind source {m.source!r} cannot hold whitespace, quotes, backslashes or '$' "
                "(it is also written into RequiresMountsFor=)"
            )
        source = m.source
    elif m.source is None:
        if opts:
            # Quadlet 5.4 refuses Mount=type=volume without a source: podman's own --mount then
            return "PodmanArgs", f"type=volume,destination={m.target}" + "".join(f",{o}" for o in opts)
        return "Volume", m.target
    else:
        external = is_external_volume(app, m.source)
        source = volume_name(app, m.source) if external else _unit_name(app, "volume", m.source)
    return "Volume", f"{source}:{m.target}" + (":" + ",".join(opts) if opts else "")


def health_cmd(hc: Healthcheck) -> str | None:
    """The ``--health-cmd`` value podman reads back as the same test (see the module docstring)."""
    if hc.disable:
        return "none"
    if hc.test is None:
        return None
    kind, args = hc.test[0], hc.test[1:]
    if kind == "CMD" and len(args) >= 2 and args[0].upper() not in ("CMD", "CMD-SHELL", "NONE"):
        return json.dumps(args, separators=(",", ":"))
    shell = args[0] if kind == "CMD-SHELL" else shlex.join(args)
    return json.dumps(["CMD-SHELL", shell], separators=(",", ":"))


def _health(unit: UnitFile, hc: Healthcheck | None, what: str) -> None:
    if hc is None:
        return
    cmd = health_cmd(hc)
    if cmd is None:
        return
    unit.add(C, "HealthCmd", _raw(cmd, what))
    if cmd == "none":
        return
    # Docker reads 0 as "the default"; podman would read interval 0 as "never": leave those out.
    if hc.interval:
        unit.add(C, "HealthInterval", fmt_seconds(hc.interval))
    if hc.timeout:
        unit.add(C, "HealthTimeout", fmt_seconds(hc.timeout))
    if hc.retries:
        unit.add(C, "HealthRetries", str(hc.retries))
    if hc.start_period:
        unit.add(C, "HealthStartPeriod", fmt_seconds(hc.start_period))


def container_file(plan: Plan, name: str, replica: int, host: HostOptions) -> tuple[UnitFile, list[str]]:
    """The Quadlet ``APP-SVC-N.container`` file for one replica, and warnings."""
    app = plan.app
    svc: Service = app.services[name]
    cname = container_name(app, name, replica)
    what = f"services.{name}"
    unit = UnitFile(f"{cname}.container")
    warnings: list[str] = []

    unit.add("Unit", "Description", systemd.escape_specifiers(description(app, name, svc, replica)))
    deps, dep_warnings = dependency_lines(plan, name, svc)
    warnings += dep_warnings
    for key, value in deps:
        unit.add("Unit", key, value)

    unit.add(C, "Image", _raw(svc.image, f"{what}.image"))
    unit.add(C, "ContainerName", cname)
    if svc.entrypoint is not None:
        unit.add(C, "Entrypoint", _raw(json.dumps(svc.entrypoint, separators=(",", ":")), f"{what}.entrypoint"))
    if svc.command is not None:
        if svc.command:
            last = svc.command[-1]
            if last and last[-1] in systemd.GO_SPACE and ord(last[-1]) > 0x7F:
                # Quadlet leaves it unquoted at the end of ExecStart=, where parsers trim it
                raise RenderError(f"{what}.command: the last argument cannot end with {last[-1]!r}")
            unit.add(C, "Exec", _words(svc.command, f"{what}.command"))
        else:
            warnings.append(f"{name}: an empty command list means the image's own command")
    for key, value in merged_environment(svc, host).items():
        check_key(f"{what}.environment: variable", key)
        unit.add(C, "Environment", _word(f"{key}={value}", f"{what}.environment.{key}"))
    for port in svc.ports:
        unit.add(C, "PublishPort", publish_spec(port))
    for i, m in enumerate(svc.volumes):
        line = _volume_line(app, m, f"{what}.volumes[{i}]")
        if line is not None:
            key, value = line
            if key == "PodmanArgs":
                unit.add(C, key, _words(["--mount", value], f"{what}.volumes[{i}]"))
            else:
                unit.add(C, key, _raw(value, f"{what}.volumes[{i}]"))
    for net, aliases in service_networks(app, svc, name).items():
        ref = network_name(app, net) if is_external_network(app, net) else _unit_name(app, "network", net)
        unit.add(C, "Network", _raw(f"{ref}:" + ",".join(f"alias={a}" for a in aliases), f"{what}.networks"))
    _health(unit, svc.healthcheck, f"{what}.healthcheck")
    oneshot = name in plan.oneshot
    if name in plan.healthy and not oneshot:
        if svc.healthcheck is not None and svc.healthcheck.disable:
            warnings.append(f"{name}: others wait for it to be healthy, but its health check is disabled")
        else:
            unit.add(C, "Notify", "healthy")
    if svc.user:
        user, _, group = svc.user.partition(":")
        unit.add(C, "User", user)
        if group:
            unit.add(C, "Group", group)
    if svc.working_dir:
        unit.add(C, "WorkingDir", _raw(svc.working_dir, f"{what}.working_dir"))
    if svc.read_only:
        unit.add(C, "ReadOnly", "true")
    if svc.init:
        unit.add(C, "RunInit", "true")
    if svc.cap_add:
        unit.add(C, "AddCapability", " ".join(svc.cap_add))
    if svc.cap_drop:
        unit.add(C, "DropCapability", " ".join(svc.cap_drop))
    labels = {**svc.labels, **fusion_labels(app, name, replica)}
    for key in sorted(labels):
        check_key(f"{what}.labels: key", key)
        unit.add(C, "Label", _word(f"{key}={labels[key]}", f"{what}.labels.{key}"))
    if svc.stop_signal:
        unit.add(C, "StopSignal", svc.stop_signal)
    unit.add(C, "StopTimeout", str(stop_timeout(svc)))
    if svc.hostname:
        unit.add(C, "HostName", svc.hostname)
    if host.podman_args:
        unit.add(C, "PodmanArgs", _words(list(host.podman_args), "host podman_args"))

    if oneshot:
        unit.add("Service", "Type", "oneshot")
        unit.add("Service", "RemainAfterExit", "yes")
    restart, restart_warnings = restart_lines(name, svc, oneshot=oneshot)
    warnings += restart_warnings
    for section, key, value in restart:
        unit.add(section, key, value)
    for key, value in resource_lines(svc):
        unit.add("Service", key, value)
    timeout = start_timeout(svc, waits_for_health=name in plan.healthy and not oneshot)
    if timeout:
        unit.add("Service", "TimeoutStartSec", str(timeout))
    stop = timeout_stop_sec(svc)
    if stop:
        unit.add("Service", "TimeoutStopSec", str(stop))
    for m in svc.volumes:
        if m.type == "bind" and m.create_host_path and m.source:
            unit.add_cmdline("Service", "ExecStartPre", [MKDIR, "-p", m.source])
    unit.add("Install", "WantedBy", WANTED_BY)
    return unit, warnings


def render_container(
    plan: Plan, name: str, replica: int, host: HostOptions, ctx: QuadletContext | None = None
) -> tuple[UnitFile, UnitFile, list[str]]:
    """``(quadlet .container file, .service unit, warnings)`` for one replica."""
    ctx = ctx or quadlet_context(plan, host)
    source, warnings = container_file(plan, name, replica, host)
    ctx.units.setdefault(source.filename, UnitInfo(service_name=source.filename.removesuffix(".container")))
    service, more = convert_container(source, ctx)
    return source, service, warnings + more


# -- .volume and .network -------------------------------------------------------------------------


def _key_vals(unit: UnitFile, group: str, key: str, values: dict[str, str], what: str) -> None:
    for k in sorted(values):
        check_key(what, k)
        unit.add(group, key, _word(f"{k}={values[k]}", f"{what} {k}"))


def volume_file(app: App, vol: str) -> UnitFile:
    decl = app.volumes[vol]
    what = f"volumes.{vol}"
    unit = UnitFile(_unit_name(app, "volume", vol))
    unit.add("Unit", "Description", f"{app.name}: volume {vol}")
    unit.add("Volume", "VolumeName", _raw(volume_name(app, vol), what))
    if decl.driver:
        unit.add("Volume", "Driver", _raw(decl.driver, f"{what}.driver"))
    opts = dict(decl.driver_opts)
    for opt, key in (("type", "Type"), ("device", "Device"), ("o", "Options")):
        if opt in opts:
            unit.add("Volume", key, _raw(opts.pop(opt), f"{what}.driver_opts.{opt}"))
    _key_vals(unit, "Volume", "Label", {**decl.labels, "fusion.app": app.name}, f"{what}.labels")
    if opts:
        args: list[str] = []
        for k in sorted(opts):
            args += ["--opt", f"{k}={opts[k]}"]
        unit.add("Volume", "PodmanArgs", _words(args, f"{what}.driver_opts"))
    return unit


def network_file(app: App, net: str) -> UnitFile:
    decl = app.networks.get(net)
    what = f"networks.{net}"
    unit = UnitFile(_unit_name(app, "network", net))
    unit.add("Unit", "Description", f"{app.name}: network {net}")
    unit.add("Network", "NetworkName", _raw(network_name(app, net), what))
    if decl is not None:
        if decl.driver:
            unit.add("Network", "Driver", _raw(decl.driver, f"{what}.driver"))
        if decl.internal:
            unit.add("Network", "Internal", "true")
        if decl.enable_ipv6:
            unit.add("Network", "IPv6", "true")
        _key_vals(unit, "Network", "Options", decl.driver_opts, f"{what}.driver_opts")
    labels = {**(decl.labels if decl is not None else {}), "fusion.app": app.name}
    _key_vals(unit, "Network", "Label", labels, f"{what}.labels")
    return unit


def render_volume(app: App, vol: str, ctx: QuadletContext) -> tuple[UnitFile, UnitFile, list[str]]:
    source = volume_file(app, vol)
    service, warnings = convert_volume(source, ctx)
    return source, service, warnings


def render_network(app: App, net: str, ctx: QuadletContext) -> tuple[UnitFile, UnitFile, list[str]]:
    source = network_file(app, net)
    service, warnings = convert_network(source, ctx)
    return source, service, warnings
