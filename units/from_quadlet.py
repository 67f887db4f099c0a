"""Quadlet files (``.container``, ``.volume``, ``.network``, ``.pod``) → the `specs.app.App` model.

Pure: the caller reads the files (:mod:`units.sources`) and passes ``{path: text}``.

One set of Quadlet files is one app: each ``NAME.container`` is the service ``NAME`` (one replica),
each ``NAME.volume``/``NAME.network`` the named volume/network ``NAME`` with Quadlet's engine name
(``VolumeName=``/``NetworkName=`` or ``systemd-NAME``, so existing data is found again).

Dependencies come from ``[Unit]``: ``Requires=``/``After=`` naming another container's service (or
its ``.container`` file) is ``depends_on`` (``Wants=`` → ``required: false``, ``BindsTo=`` →
``restart: true``); the condition is ``service_healthy`` when that container has ``Notify=healthy``
and ``service_completed_successfully`` when its ``[Service]`` has ``Type=oneshot``.

A ``.pod`` has no counterpart in Fusion (its containers share one network namespace and one host).
Fusion turns it into a network named after the pod that its containers join (they reach each other
by service name instead of ``localhost``: a warning says so), and the pod's ``PublishPort=`` goes to
the one member container, or to the member whose ``ExposeHostPort=`` names the container port.

Values mean what systemd makes of them: ``%%`` is ``%`` and ``$$`` is ``$``; any other specifier
(``%h``) or variable (``$HOME``) is an error.

Anything Fusion cannot represent is an error ``unsupported: <Key> (file:line)``, never dropped.
Accepted without effect: ``Description=``, ``RemainAfterExit=``, ``After=network-online.target``,
``ExposeHostPort=`` (it only picks a pod port's container), and, with a warning, ``ContainerName=``
(Fusion names containers ``APP-SVC-N``) and ``TimeoutStartSec=``/``TimeoutStopSec=`` (Fusion
derives them). ``[Unit] StartLimitBurst=``/``StartLimitIntervalSec=`` are the retry limit.
Drop-in directories are refused by :mod:`units.sources`.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from specs.app import DEFER_CHECKS, App, format_path
from specs.errors import Location, SpecError, SpecErrors
from units import systemd
from units.unitfile import UnitFile, UnitFileError

__all__ = ["QUADLET_EXTENSIONS", "quadlet_to_app", "is_quadlet_file"]

QUADLET_EXTENSIONS = (".container", ".volume", ".network", ".pod")

_CONTAINER_KEYS = {
    "Image", "ContainerName", "Exec", "Entrypoint", "Environment", "PublishPort", "Volume", "Tmpfs",
    "Network", "NetworkAlias", "HealthCmd", "HealthInterval", "HealthTimeout", "HealthRetries",
    "HealthStartPeriod", "Notify", "User", "Group", "WorkingDir", "ReadOnly", "RunInit",
    "AddCapability", "DropCapability", "Label", "StopSignal", "StopTimeout", "HostName", "Pod",
    "ExposeHostPort",
}  # fmt: skip
_VOLUME_KEYS = {"VolumeName", "Driver", "Label", "Options", "Type", "Device"}
_NETWORK_KEYS = {"NetworkName", "Driver", "Internal", "IPv6", "Label", "Options"}
_POD_KEYS = {"PodName", "Network", "PublishPort"}
_UNIT_KEYS = {"Description", "Requires", "After", "Wants", "BindsTo", "StartLimitIntervalSec", "StartLimitBurst"}
_SERVICE_KEYS = {
    "Restart", "RestartSec", "Type", "RemainAfterExit", "MemoryMax", "MemoryLow", "CPUQuota", "TasksMax",
    "TimeoutStartSec", "TimeoutStopSec",
}  # fmt: skip
_INSTALL_KEYS = {"WantedBy"}
_GROUP = {".container": "Container", ".volume": "Volume", ".network": "Network", ".pod": "Pod"}
_KEYS = {".container": _CONTAINER_KEYS, ".volume": _VOLUME_KEYS, ".network": _NETWORK_KEYS, ".pod": _POD_KEYS}
_VOLUME_OPTS = {"ro", "rw", "z", "Z", "nocopy", "rprivate", "private", "rshared", "shared", "rslave", "slave"}
_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"(\d+)([bkmgt]?)", re.IGNORECASE)


def is_quadlet_file(path: str) -> bool:
    return path.endswith(QUADLET_EXTENSIONS)


def _stem(path: str) -> str:
    return posixpath.basename(path).rsplit(".", 1)[0]


class _Lines:
    """Where each ``Key=`` of each section is in the file (1-based line numbers, in order)."""

    def __init__(self, text: str) -> None:
        self.text = text.split("\n")
        self.sections: dict[str, int] = {}
        self.keys: dict[tuple[str, str], list[int]] = {}
        section = ""
        for i, raw in enumerate(text.split("\n"), start=1):
            line = raw.strip()
            if line.startswith("[") and "]" in line:
                section = line[1 : line.index("]")]
                self.sections.setdefault(section, i)
            elif "=" in line and not line.startswith(("#", ";")):
                key = line.split("=", 1)[0].strip()
                self.keys.setdefault((section, key), []).append(i)

    def line(self, section: str, key: str | None = None, index: int = 0) -> int:
        if key is None:
            return self.sections.get(section, 0)
        found = self.keys.get((section, key), [])
        return found[min(index, len(found) - 1)] if found else self.sections.get(section, 0)


class _File:
    def __init__(self, path: str, text: str, unit: UnitFile) -> None:
        self.path, self.unit, self.lines = path, unit, _Lines(text)
        self.ext = posixpath.splitext(path)[1]
        self.name = _stem(path)


class _Builder:
    def __init__(self) -> None:
        self.errors: list[SpecError] = []
        self.warnings: list[str] = []

    def error(self, f: _File, section: str, key: str | None, message: str, index: int = 0) -> None:
        line = f.lines.line(section, key, index)
        self.errors.append(SpecError(message, where=Location(f.path, line), path=f"[{section}]" + (f" {key}" if key else "")))

    def unsupported(self, f: _File, section: str, key: str | None, index: int = 0) -> None:
        line = f.lines.line(section, key, index)
        what = key if key else f"[{section}]"
        self.error(f, section, key, f"unsupported: {what} ({f.path}:{line})", index)


def _duration(text: str) -> float | None:
    """Go's ``time.ParseDuration`` for the forms Quadlet files use (``30s``, ``1m30s``, ``500ms``)."""
    text = text.strip()
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _GO_DURATION.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
        pos = m.end()
    return total if pos == len(text) and pos > 0 else None


def _systemd_seconds(text: str) -> float | None:
    """A systemd time span (``5``, ``5s``, ``1min 30s``, ``500ms``)."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    compact = text.replace(" ", "").replace("min", "m").replace("sec", "s").replace("msec", "ms")
    return _duration(compact)


def _size(text: str) -> int | None:
    m = _SIZE.fullmatch(text.strip())
    if not m:
        return None
    mult = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}[m.group(2).lower()]
    return int(m.group(1)) * mult


def _bool(value: str) -> bool:
    return value.strip().lower() in ("1", "yes", "true", "on")


def _port(text: str) -> dict[str, Any] | None:
    """``[IP:][HOST:]CONTAINER[/PROTO]`` → a Port dict (no ranges)."""
    proto = "tcp"
    if "/" in text:
        text, proto = text.rsplit("/", 1)
    host_ip: str | None = None
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            return None
        host_ip, text = text[1:end], text[end + 2 :]
    parts = text.split(":")
    if host_ip is None and len(parts) == 3:
        host_ip, parts = parts[0] or None, parts[1:]
    if len(parts) == 1:
        published, target = "", parts[0]
    elif len(parts) == 2:
        published, target = parts
    else:
        return None
    if not target.isdigit() or (published and not published.isdigit()):
        return None
    out: dict[str, Any] = {"target": int(target), "protocol": proto}
    if published:
        out["published"] = int(published)
    if host_ip:
        out["host_ip"] = host_ip
    return out


def _health_test(cmd: str) -> list[str] | None:
    """podman's reading of ``--health-cmd``: ``none``, a JSON array, or a shell command."""
    if cmd.strip().lower() == "none":
        return None
    try:
        arr = json.loads(cmd)
    except ValueError:
        return ["CMD-SHELL", cmd]
    if not isinstance(arr, list) or not arr or not all(isinstance(a, str) for a in arr):
        return ["CMD-SHELL", cmd]
    if arr[0].upper() in ("CMD", "CMD-SHELL"):
        return [arr[0].upper(), *arr[1:]]
    return ["CMD", *arr] if len(arr) > 1 else ["CMD-SHELL", arr[0]]


def _check_keys(b: _Builder, f: _File) -> None:
    allowed = {"Unit": _UNIT_KEYS, "Service": _SERVICE_KEYS, "Install": _INSTALL_KEYS, _GROUP[f.ext]: _KEYS[f.ext]}
    if f.ext != ".container":
        allowed["Unit"] = {"Description"}
        allowed.pop("Service")
        allowed.pop("Install")
    for section in f.unit.sections():
        if section not in allowed:
            b.unsupported(f, section, None)
            continue
        for key in f.unit.keys(section):
            if key not in allowed[section]:
                b.unsupported(f, section, key)


def _volume(b: _Builder, f: _File) -> dict[str, Any]:
    u = f.unit
    out: dict[str, Any] = {"name": u.lookup("Volume", "VolumeName") or f"systemd-{f.name}"}
    if (driver := u.lookup("Volume", "Driver")) is not None:
        out["driver"] = driver
    opts = {k: u.lookup("Volume", key) for k, key in (("type", "Type"), ("device", "Device"), ("o", "Options"))}
    out["driver_opts"] = {k: v for k, v in opts.items() if v is not None}
    out["labels"] = u.lookup_all_key_val("Volume", "Label")
    return out


def _network(b: _Builder, f: _File) -> dict[str, Any]:
    u = f.unit
    out: dict[str, Any] = {"name": u.lookup("Network", "NetworkName") or f"systemd-{f.name}"}
    if (driver := u.lookup("Network", "Driver")) is not None:
        out["driver"] = driver
    for key, field in (("Internal", "internal"), ("IPv6", "enable_ipv6")):
        if (v := u.lookup("Network", key)) is not None:
            out[field] = _bool(v)
    out["driver_opts"] = u.lookup_all_key_val("Network", "Options")
    out["labels"] = u.lookup_all_key_val("Network", "Label")
    return out


class _App:
    """The app being assembled as plain data, validated by pydantic at the end."""

    def __init__(self) -> None:
        self.services: dict[str, dict[str, Any]] = {}
        self.volumes: dict[str, dict[str, Any]] = {}
        self.networks: dict[str, dict[str, Any]] = {}
        self.where: dict[str, _File] = {}


def _container(b: _Builder, f: _File, app: _App, service_of: Mapping[str, str], pods: Mapping[str, _File]) -> None:
    u, G = f.unit, "Container"
    svc: dict[str, Any] = {}
    image = u.lookup(G, "Image")
    if not image:
        b.error(f, G, None, "no Image= key: Fusion runs images (Rootfs= is not supported)")
    elif image.endswith((".image", ".build")):
        b.unsupported(f, G, "Image")
    else:
        svc["image"] = image
    if u.has_key(G, "ContainerName"):
        b.warnings.append(f"{f.path}: ContainerName= is ignored: Fusion names containers APP-SERVICE-N")
    if (words := _args(b, f, G, "Exec")) is not None:
        svc["command"] = words
    if (ep := u.lookup(G, "Entrypoint")) is not None:
        try:
            parsed = json.loads(ep)
        except ValueError:
            parsed = None
        svc["entrypoint"] = parsed if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed) else [ep]
    svc["environment"] = u.lookup_all_key_val(G, "Environment")
    ports: list[dict[str, Any]] = []
    for i, p in enumerate(u.lookup_all(G, "PublishPort")):
        port = _port(p)
        if port is None:
            b.error(f, G, "PublishPort", f"bad or unsupported port {p!r} (ranges are not supported)", i)
        else:
            ports.append(port)
    svc["ports"] = ports
    svc["volumes"] = _mounts(b, f, app)
    networks: dict[str, dict[str, Any]] = {}
    aliases = u.lookup_all_strv(G, "NetworkAlias")
    for i, net in enumerate(u.lookup_all(G, "Network")):
        name, _, opts = net.partition(":")
        if name.endswith(".network"):
            key = name[: -len(".network")]
        elif name in ("host", "none", "private", "bridge", "slirp4netns", "pasta") or name.startswith(
            ("container:", "ns:")
        ) or name.endswith(".container"):
            b.unsupported(f, G, "Network", i)
            continue
        else:
            key = name
            app.networks.setdefault(key, {"external": True})
        net_aliases = list(aliases)
        for opt in filter(None, opts.split(",")):
            k, _, v = opt.partition("=")
            if k == "alias" and v:
                net_aliases.append(v)
            else:
                b.error(f, G, "Network", f"unsupported network option {opt!r}", i)
        networks[key] = {"aliases": net_aliases}
    pod = u.lookup(G, "Pod")
    if pod:
        pod_name = pod[: -len(".pod")] if pod.endswith(".pod") else None
        if pod_name is None or pod_name not in pods:
            b.error(f, G, "Pod", f"pod {pod} is not one of the .pod files given")
        else:
            networks.setdefault(pod_name, {"aliases": list(aliases)})
    elif aliases and not networks:
        app.networks.setdefault("default", {})
        networks["default"] = {"aliases": list(aliases)}
    svc["networks"] = networks
    hc = _health(b, f)
    if hc is not None:
        svc["healthcheck"] = hc
    notify = u.lookup(G, "Notify")
    if notify is not None and notify.lower() != "healthy" and _bool(notify):
        b.unsupported(f, G, "Notify")
    user, group = u.lookup(G, "User"), u.lookup(G, "Group")
    if user:
        svc["user"] = f"{user}:{group}" if group else user
    elif group:
        b.error(f, G, "Group", "Group= without User=")
    for key, field in (("WorkingDir", "working_dir"), ("StopSignal", "stop_signal"), ("HostName", "hostname")):
        if (text := u.lookup(G, key)) is not None:
            svc[field] = text
    for key, field in (("ReadOnly", "read_only"), ("RunInit", "init")):
        if (flag := u.lookup(G, key)) is not None:
            svc[field] = _bool(flag)
    for key, field in (("AddCapability", "cap_add"), ("DropCapability", "cap_drop")):
        svc[field] = [c.upper().removeprefix("CAP_") for c in u.lookup_all_strv(G, key)]
    svc["labels"] = u.lookup_all_key_val(G, "Label")
    if (stop := u.lookup(G, "StopTimeout")) is not None:
        if stop.strip().isdigit():
            svc["stop_grace_period"] = float(stop)
        else:
            b.error(f, G, "StopTimeout", f"bad StopTimeout {stop!r}: expected whole seconds")
    _service_section(b, f, svc)
    svc["depends_on"] = _depends(b, f, service_of)
    app.services[f.name] = {k: (v if k in ("depends_on", "deploy") else _literal(b, f, v)) for k, v in svc.items()}
    app.where[f.name] = f


_SYSTEMD_ESCAPES = re.compile(r"%(.)|\$(\$|\{[^}]*\}?|[A-Za-z_][A-Za-z0-9_]*)", re.DOTALL)


def _literal(b: _Builder, f: _File, value: Any) -> Any:
    """What a value means once systemd has read the generated ``ExecStart=``: ``%%`` is ``%`` and
    ``$$`` is ``$``. Any other specifier (``%h``) or variable (``$HOME``) depends on the machine or
    the unit, which Fusion cannot represent: an error."""
    if isinstance(value, dict):
        return {_literal(b, f, k): _literal(b, f, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal(b, f, v) for v in value]
    if not isinstance(value, str) or ("%" not in value and "$" not in value):
        return value

    def one(m: re.Match[str]) -> str:
        if m.group(0) in ("%%", "$$"):
            return m.group(0)[0]
        what = "specifier" if m.group(0).startswith("%") else "systemd variable"
        line = next((i for i, t in enumerate(f.lines.text, 1) if m.group(0) in t), 0)
        b.errors.append(
            SpecError(f"unsupported: {what} {m.group(0)} ({f.path}:{line})", where=Location(f.path, line))
        )
        return m.group(0)

    return _SYSTEMD_ESCAPES.sub(one, value)


def _args(b: _Builder, f: _File, section: str, key: str) -> list[str] | None:
    value = f.unit.lookup_last(section, key)
    if value is None:
        return None
    try:
        return systemd.split_command_line(value, keep_empty=False)
    except systemd.SplitError as e:
        b.error(f, section, key, f"cannot split {value!r}: {e}")
        return None


def _mounts(b: _Builder, f: _File, app: _App) -> list[dict[str, Any]]:
    u, G = f.unit, "Container"
    out: list[dict[str, Any]] = []
    for i, v in enumerate(u.lookup_all(G, "Volume")):
        parts = v.split(":")
        if len(parts) == 1:
            out.append({"type": "volume", "target": parts[0]})
            continue
        if len(parts) > 3:
            b.error(f, G, "Volume", f"bad volume {v!r}", i)
            continue
        source, target = parts[0], parts[1]
        opts = parts[2].split(",") if len(parts) == 3 and parts[2] else []
        bad = [o for o in opts if o not in _VOLUME_OPTS]
        if bad:
            b.error(f, G, "Volume", f"unsupported volume option {bad[0]!r}", i)
            continue
        m: dict[str, Any] = {"target": target, "read_only": "ro" in opts}
        if source.startswith(("/", ".")):
            if source.startswith("."):
                source = posixpath.normpath(posixpath.join(posixpath.dirname(f.path) or ".", source))
                if not source.startswith("/"):
                    b.error(f, G, "Volume", f"relative bind source {parts[0]!r} needs the file's absolute path", i)
                    continue
            m.update(type="bind", source=source)
            sel = [o for o in opts if o in ("z", "Z")]
            prop = [o for o in opts if o not in ("ro", "rw", "z", "Z", "nocopy")]
            if sel:
                m["selinux"] = sel[-1]
            if prop:
                m["propagation"] = prop[-1]
            m["create_host_path"] = False  # podman does not create a missing bind source
        else:
            name = source[: -len(".volume")] if source.endswith(".volume") else source
            if not source.endswith(".volume"):
                app.volumes.setdefault(name, {"name": name})
            m.update(type="volume", source=name, nocopy="nocopy" in opts)
        out.append(m)
    for i, v in enumerate(u.lookup_all(G, "Tmpfs")):
        target, _, opts_text = v.partition(":")
        t: dict[str, Any] = {"type": "tmpfs", "target": target}
        for opt in filter(None, opts_text.split(",")):
            k, _, val = opt.partition("=")
            if k == "size" and (size := _size(val)) is not None:
                t["tmpfs_size"] = size
            elif k == "mode" and re.fullmatch(r"[0-7]{1,4}", val):
                t["tmpfs_mode"] = int(val, 8)
            elif opt in ("ro", "rw"):
                t["read_only"] = opt == "ro"
            else:
                b.error(f, G, "Tmpfs", f"unsupported tmpfs option {opt!r}", i)
        out.append(t)
    return out


def _health(b: _Builder, f: _File) -> dict[str, Any] | None:
    u, G = f.unit, "Container"
    cmd = u.lookup(G, "HealthCmd")
    timing = [k for k in ("HealthInterval", "HealthTimeout", "HealthRetries", "HealthStartPeriod") if u.has_key(G, k)]
    if cmd is None and not timing:
        return None
    hc: dict[str, Any] = {}
    if cmd is not None:
        test = _health_test(cmd)
        if test is None:
            return {"disable": True}
        hc["test"] = test
    for key, field in (("HealthInterval", "interval"), ("HealthTimeout", "timeout"), ("HealthStartPeriod", "start_period")):
        if (v := u.lookup(G, key)) is not None:
            seconds = _duration(v)
            if seconds is None:
                b.error(f, G, key, f"bad duration {v!r}")
            else:
                hc[field] = seconds
    if (v := u.lookup(G, "HealthRetries")) is not None:
        if v.strip().isdigit():
            hc["retries"] = int(v)
        else:
            b.error(f, G, "HealthRetries", f"bad number {v!r}")
    return hc


def _service_section(b: _Builder, f: _File, svc: dict[str, Any]) -> None:
    u = f.unit
    restart = u.lookup("Service", "Restart")
    if restart is not None:
        if restart in ("no", "always", "on-failure"):
            svc["restart"] = restart
        else:
            b.error(f, "Service", "Restart", f"unsupported: Restart={restart} (use no, always or on-failure)")
    if (v := u.lookup("Service", "RestartSec")) is not None:
        seconds = _systemd_seconds(v)
        if seconds is None:
            b.error(f, "Service", "RestartSec", f"bad time span {v!r}")
        else:
            condition = {"no": "none", "always": "any", "on-failure": "on-failure"}.get(svc.get("restart", "no"), "any")
            svc.setdefault("deploy", {})["restart_policy"] = {"condition": condition, "delay": seconds}
    burst = u.lookup("Unit", "StartLimitBurst")
    interval = u.lookup("Unit", "StartLimitIntervalSec")
    if burst is not None:
        if not burst.strip().isdigit() or int(burst) < 1:
            b.error(f, "Unit", "StartLimitBurst", f"bad StartLimitBurst {burst!r}")
        elif "restart_policy" in svc.get("deploy", {}):
            svc["deploy"]["restart_policy"]["max_attempts"] = int(burst) - 1
            window = _systemd_seconds(interval) if interval is not None else None
            if window:
                svc["deploy"]["restart_policy"]["window"] = window
        elif svc.get("restart") == "on-failure":
            svc["restart_max_retries"] = int(burst) - 1
        else:
            b.error(f, "Unit", "StartLimitBurst", "unsupported: StartLimitBurst= without Restart=on-failure or RestartSec=")
    for key, derived in (("TimeoutStartSec", "the health check"), ("TimeoutStopSec", "StopTimeout=")):
        if u.has_key("Service", key):
            b.warnings.append(f"{f.path}: {key}= is ignored: Fusion derives it from {derived}")
    service_type = u.lookup("Service", "Type")
    if service_type not in (None, "notify", "oneshot"):
        b.error(f, "Service", "Type", f"unsupported: Type={service_type} (Quadlet takes notify or oneshot)")
    limits: dict[str, Any] = {}
    reservations: dict[str, Any] = {}
    for key, target, field in (("MemoryMax", limits, "memory"), ("MemoryLow", reservations, "memory")):
        if (v := u.lookup("Service", key)) is not None:
            size = _size(v.replace("K", "k").replace("M", "m").replace("G", "g").replace("T", "t"))
            if size is None:
                b.error(f, "Service", key, f"bad size {v!r}")
            else:
                target[field] = size
    if (v := u.lookup("Service", "CPUQuota")) is not None:
        m = re.fullmatch(r"(\d+(?:\.\d+)?)%", v.strip())
        if m:
            limits["cpus"] = float(m.group(1)) / 100
        else:
            b.error(f, "Service", "CPUQuota", f"bad CPUQuota {v!r}: expected N%")
    if (v := u.lookup("Service", "TasksMax")) is not None:
        if v.strip().isdigit():
            limits["pids"] = int(v)
        else:
            b.error(f, "Service", "TasksMax", f"unsupported: TasksMax={v} (a number is)")
    if limits or reservations:
        svc.setdefault("deploy", {})["resources"] = {"limits": limits, "reservations": reservations}
    for i, wanted in enumerate(u.lookup_all_strv("Install", "WantedBy")):
        if wanted not in ("multi-user.target", "default.target"):
            b.error(f, "Install", "WantedBy", f"unsupported: WantedBy={wanted} (Fusion installs into multi-user.target)", i)


def _depends(b: _Builder, f: _File, service_of: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    u = f.unit
    deps: dict[str, dict[str, Any]] = {}
    after: set[str] = set()
    kinds: dict[str, dict[str, bool]] = {}
    for key in ("Requires", "After", "Wants", "BindsTo"):
        for target in u.lookup_all_strv("Unit", key):
            if target in ("network-online.target", "network.target"):
                continue
            svc = service_of.get(target)
            if svc is None:
                b.error(f, "Unit", key, f"unsupported: {key}={target} (only other containers of this app)")
                continue
            if key == "After":
                after.add(svc)
            else:
                kinds.setdefault(svc, {})[key] = True
    for svc in sorted(set(kinds) | after):
        k = kinds.get(svc, {})
        if not k:
            b.error(f, "Unit", "After", f"unsupported: After={svc}.service without Requires=, Wants= or BindsTo=")
            continue
        deps[svc] = {"required": not (k.get("Wants") and not (k.get("Requires") or k.get("BindsTo"))),
                     "restart": bool(k.get("BindsTo"))}
    return deps


def _conditions(app: _App) -> None:
    for svc in app.services.values():
        for dep, d in svc["depends_on"].items():
            f = app.where.get(dep)
            if f is None:
                continue
            notify = f.unit.lookup("Container", "Notify")
            if f.unit.lookup("Service", "Type") == "oneshot":
                d["condition"] = "service_completed_successfully"
            elif notify is not None and notify.lower() == "healthy":
                d["condition"] = "service_healthy"


def _pods(b: _Builder, pods: Mapping[str, _File], app: _App) -> None:
    for pod_name, f in sorted(pods.items()):
        members = sorted(n for n, s in app.services.items() if pod_name in s["networks"] and app.where[n].unit.lookup("Container", "Pod") == f"{pod_name}.pod")
        app.networks.setdefault(pod_name, {"name": f.unit.lookup("Pod", "PodName") or f"systemd-{pod_name}"})
        if len(members) > 1:
            b.warnings.append(
                f"{f.path}: the containers of pod {pod_name} ({', '.join(members)}) share a network named "
                f"{pod_name} instead of one network namespace: they reach each other by service name, not localhost"
            )
        for net in f.unit.lookup_all("Pod", "Network"):
            name = net.partition(":")[0]
            key = name[: -len(".network")] if name.endswith(".network") else name
            if not name.endswith(".network"):
                app.networks.setdefault(key, {"external": True})
            for m in members:
                app.services[m]["networks"].setdefault(key, {"aliases": []})
        for i, p in enumerate(f.unit.lookup_all("Pod", "PublishPort")):
            port = _port(p)
            if port is None:
                b.error(f, "Pod", "PublishPort", f"bad or unsupported port {p!r}", i)
                continue
            owners = members if len(members) == 1 else [
                m for m in members
                if str(port["target"]) in (x.partition("/")[0] for x in app.where[m].unit.lookup_all_strv("Container", "ExposeHostPort"))
            ]
            if len(owners) != 1:
                b.error(f, "Pod", "PublishPort", f"cannot tell which container of pod {pod_name} listens on {port['target']}: "
                        "give exactly one member ExposeHostPort=" + str(port["target"]), i)
                continue
            app.services[owners[0]]["ports"].append(port)


def quadlet_to_app(files: Mapping[str, str], *, app_name: str) -> tuple[App, list[str]]:
    """``{path: text}`` of Quadlet files → ``(App, warnings)``; raises SpecErrors (exit 2)."""
    b = _Builder()
    parsed: list[_File] = []
    for path in sorted(files):
        if not is_quadlet_file(path):
            b.errors.append(SpecError(f"not a Quadlet file (expected one of {', '.join(QUADLET_EXTENSIONS)})", where=Location(path)))
            continue
        try:
            unit = UnitFile.parse(files[path], filename=posixpath.basename(path), path=path)
        except UnitFileError as e:
            b.errors.append(e)
            continue
        f = _File(path, files[path], unit)
        _check_keys(b, f)
        parsed.append(f)
    if not parsed and not b.errors:
        b.errors.append(SpecError("no Quadlet files (.container, .volume, .network, .pod) found", where=Location(app_name)))
    service_of: dict[str, str] = {}
    for f in parsed:
        if f.ext == ".container":
            service_of[f"{f.name}.service"] = f.name
            service_of[f"{f.name}.container"] = f.name
    pods = {f.name: f for f in parsed if f.ext == ".pod"}
    app = _App()
    for f in parsed:
        if f.ext == ".volume":
            app.volumes[f.name] = _literal(b, f, _volume(b, f))
        elif f.ext == ".network":
            app.networks[f.name] = _literal(b, f, _network(b, f))
    for f in parsed:
        if f.ext == ".container":
            _container(b, f, app, service_of, pods)
    _pods(b, pods, app)
    _conditions(app)
    if b.errors:
        raise SpecErrors(b.errors)
    data = {"name": app_name, "services": app.services, "volumes": app.volumes, "networks": app.networks}
    try:
        result = App.model_validate(data, context={DEFER_CHECKS: True})
    except ValidationError as e:
        raise SpecErrors(
            [SpecError(err["msg"], where=_where(app, tuple(err["loc"]), app_name), path=format_path(tuple(err["loc"])))
             for err in e.errors()]
        ) from None
    problems = result.problems()
    if problems:
        raise SpecErrors([SpecError(p.message, where=_where(app, p.loc, app_name), path=p.path) for p in problems])
    return result, b.warnings


# Where a model field of a service came from in its .container file.
_FIELD_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "ports": ("Container", ("PublishPort",)),
    "depends_on": ("Unit", ("Requires", "BindsTo", "Wants")),
    "volumes": ("Container", ("Volume", "Tmpfs")),
    "networks": ("Container", ("Network",)),
    "healthcheck": ("Container", ("HealthCmd",)),
    "image": ("Container", ("Image",)),
    "user": ("Container", ("User",)),
    "working_dir": ("Container", ("WorkingDir",)),
    "stop_signal": ("Container", ("StopSignal",)),
    "hostname": ("Container", ("HostName",)),
    "cap_add": ("Container", ("AddCapability",)),
    "cap_drop": ("Container", ("DropCapability",)),
    "environment": ("Container", ("Environment",)),
    "labels": ("Container", ("Label",)),
}


def _where(app: _App, loc: tuple[str | int, ...], app_name: str) -> Location:
    """The file and line a model path (``services.web.ports[0]``) came from."""
    if len(loc) < 2 or loc[0] != "services":
        return Location(app_name)
    f = app.where.get(str(loc[1]))
    if f is None:
        return Location(app_name)
    field = str(loc[2]) if len(loc) > 2 else ""
    section, keys = _FIELD_KEYS.get(field, ("Container", ()))
    index = loc[3] if len(loc) > 3 and isinstance(loc[3], int) else 0
    for key in keys:
        if f.lines.keys.get((section, key)):
            return Location(f.path, f.lines.line(section, key, index))
    return Location(f.path, f.lines.line("Container"))
