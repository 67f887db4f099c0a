"""Compose Specification (YAML or JSON) -> `specs.app.App`.

Side effects: reads the `env_file`s a service names (through the `read_text` function passed in).
Everything else is pure: the parsed `Doc` and the interpolation environment come in, an `App` (or
`SpecError`/`SpecErrors` naming file:line:col and the key path) comes out.

Order of work: interpolate every string value (Compose rules, `specs.interpolate`), check keys at
every level (unknown -> error naming the key; a Compose feature Fusion does not do -> `unsupported:
<feature> (file:line)`; `x-*` extension keys other than a service's `x-fusion` are allowed and
ignored, as the Compose Specification says), normalize short forms into the model's shape, validate
with pydantic (its errors are mapped back to file positions), and finally run `App.problems()`.

Value grammars (durations, sizes, ports, constraints) are in `specs.grammar`. Short volume syntax:
[SOURCE:]TARGET[:MODE,...]; a SOURCE starting with "/", "." or "~" is a bind mount (relative to the
spec's directory), otherwise a named volume; MODE: ro, rw, z, Z, nocopy, and the bind propagations.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path as FsPath
from typing import Any, TypeVar

from pydantic import ValidationError

from specs.app import DEFER_CHECKS, App, Mount, Port, name_problem
from specs.grammar import (
    Invalid,
    as_argv,
    as_bool,
    as_caps,
    as_cpus,
    as_duration,
    as_list,
    as_mapping,
    as_mode,
    as_restart,
    as_size,
    as_str,
    as_str_map,
    as_target,
    as_volume_name,
    parse_constraint,
    parse_port,
    port_number,
    scalar,
)
from specs.interpolate import EnvFileError, InterpolationError, interpolate, parse_env_text
from specs.source import Collector, Doc, Path, pydantic_message

ReadText = Callable[[FsPath], str]
T = TypeVar("T")

# -- the key tables: what Fusion supports, and the Compose features it rejects on purpose ------------

TOP_KEYS = {"version", "name", "services", "volumes", "networks"}
TOP_UNSUPPORTED: dict[str, str | None] = {
    "configs": "bake the file into the image, or bind-mount it from the host",
    "secrets": "bind-mount the secret from the host read-only",
    "include": "merge the files into one",
    "models": None,
}

SERVICE_KEYS = {
    "image", "command", "entrypoint", "environment", "env_file", "ports", "volumes", "tmpfs",
    "depends_on", "healthcheck", "restart", "stop_grace_period", "stop_signal", "user", "working_dir",
    "hostname", "read_only", "init", "cap_add", "cap_drop", "labels", "networks", "deploy", "x-fusion",
}  # fmt: skip
_RES = "use deploy.resources.limits"
SERVICE_UNSUPPORTED: dict[str, str | None] = {
    "build": "build the image yourself, push it to a registry and name it in `image`",
    "container_name": "Fusion names each replica's container itself",
    "links": "use the service name as the host name, and depends_on for start order",
    "external_links": None, "extends": "merge the files into one", "profiles": None,
    "network_mode": "use networks", "pid": None, "ipc": None, "uts": None, "userns_mode": None,
    "privileged": "use cap_add for the capabilities the container needs",
    "devices": None, "device_cgroup_rules": None, "gpus": None, "configs": None, "secrets": None,
    "cpus": _RES, "cpu_count": _RES, "cpu_percent": _RES, "cpu_shares": _RES, "cpu_period": _RES,
    "cpu_quota": _RES, "cpu_rt_period": None, "cpu_rt_runtime": None, "cpuset": None,
    "mem_limit": _RES, "mem_reservation": "use deploy.resources.reservations", "memswap_limit": None,
    "mem_swappiness": None, "pids_limit": _RES, "oom_kill_disable": None, "oom_score_adj": None,
    "blkio_config": None, "shm_size": None, "sysctls": None, "ulimits": None, "security_opt": None,
    "expose": "list the port under ports, or just reach it over the service's network",
    "extra_hosts": None, "dns": None, "dns_opt": None, "dns_search": None, "domainname": None,
    "mac_address": None, "logging": "containers log to the journal", "platform": None,
    "pull_policy": None, "runtime": None, "isolation": None, "credential_spec": None,
    "scale": "use deploy.replicas", "stdin_open": None, "tty": None, "storage_opt": None,
    "group_add": None, "cgroup": None, "cgroup_parent": None, "volumes_from": None,
    "annotations": None, "attach": None, "develop": None, "label_file": None, "post_start": None,
    "pre_stop": None, "provider": None, "use_api_socket": None, "models": None, "driver_opts": None,
}  # fmt: skip

HEALTH_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}
DEPENDS_KEYS = {"condition", "restart", "required"}
PORT_KEYS = {"target", "published", "host_ip", "protocol", "mode"}
PORT_UNSUPPORTED: dict[str, str | None] = {"name": None, "app_protocol": None}
MOUNT_KEYS = {"type", "source", "target", "read_only", "bind", "volume", "tmpfs"}
MOUNT_UNSUPPORTED: dict[str, str | None] = {"consistency": None, "image": None}
DEPLOY_KEYS = {"mode", "replicas", "placement", "resources", "update_config", "restart_policy", "labels"}
DEPLOY_UNSUPPORTED: dict[str, str | None] = {
    "rollback_config": "a failed update pauses; see update_config.failure_action",
    "endpoint_mode": None,
}
X_FUSION_KEYS = {"min_available", "links"}
VOLUME_KEYS = {"driver", "driver_opts", "external", "labels", "name"}
NETWORK_KEYS = {"driver", "driver_opts", "external", "internal", "enable_ipv6", "labels", "name"}
NETWORK_UNSUPPORTED: dict[str, str | None] = {"ipam": None, "attachable": None}
ATTACH_UNSUPPORTED: dict[str, str | None] = {
    k: None
    for k in ("ipv4_address", "ipv6_address", "link_local_ips", "mac_address", "priority",
              "gw_priority", "driver_opts", "interface_name")
}  # fmt: skip


# -- the loader ---------------------------------------------------------------------------------------


def compose_to_app(
    doc: Doc,
    env: Mapping[str, str],
    *,
    default_name: str,
    base_dir: FsPath,
    read_text: ReadText,
) -> App:
    """Turn a parsed Compose file into a checked `App`, or raise SpecError/SpecErrors."""
    return _Loader(doc, env, base_dir, read_text).load(default_name)


class _Loader:
    def __init__(self, doc: Doc, env: Mapping[str, str], base_dir: FsPath, read_text: ReadText) -> None:
        self.doc = doc
        self.env = env
        self.base_dir = base_dir
        self.read_text = read_text
        self.out = Collector(doc)
        # where each normalized port / mount of a service came from (ranges and tmpfs shift indexes)
        self.port_origin: dict[str, list[Path]] = {}
        self.mount_origin: dict[str, list[Path]] = {}
        # model paths whose key is spelled differently in the file (list-form depends_on/networks)
        self.alias: dict[Path, Path] = {}

    # -- reporting helpers --

    def check_keys(
        self,
        value: Mapping[str, Any],
        path: Path,
        allowed: set[str],
        unsupported: Mapping[str, str | None] | None = None,
        extensions: bool = False,
    ) -> dict[str, Any]:
        """The entries of ``value`` whose keys are allowed; report the others."""
        kept: dict[str, Any] = {}
        for key, item in value.items():
            if key in allowed:
                kept[key] = item
            elif extensions and key.startswith("x-"):
                continue
            elif unsupported is not None and key in unsupported:
                self.out.unsupported((*path, key), key, unsupported[key])
            else:
                close = difflib.get_close_matches(key, sorted(allowed), n=1)
                self.out.error(
                    (*path, key),
                    f"unknown key {key!r}",
                    at="key",
                    hint=f"did you mean {close[0]!r}?" if close else None,
                )
        return kept

    def guard(self, fn: Callable[[], None], path: Path) -> None:
        """Run one normalization step; report an `Invalid` (or a ValidationError of a model built
        inside the step, at ``path``) instead of stopping."""
        self.guarded(fn, path)

    def guarded(self, fn: Callable[[], T], path: Path) -> T | None:
        """``fn()``, or None after reporting its `Invalid` (or a model's ValidationError, at ``path``)."""
        try:
            return fn()
        except Invalid as e:
            self.out.error(e.path, e.message, hint=e.hint)
        except ValidationError as e:
            self.out.error(path, pydantic_message(e.errors()[0]))
        return None

    # -- the whole file --

    def load(self, default_name: str) -> App:
        if not isinstance(self.doc.data, dict):
            self.out.error((), "a Compose file must be a mapping with a `services` key")
            self.out.raise_if_any()
        data = self.interpolated(self.doc.data, ())
        top = self.check_keys(data, (), TOP_KEYS, TOP_UNSUPPORTED, extensions=True)
        app: dict[str, Any] = {"name": default_name, "services": {}, "volumes": {}, "networks": {}}
        if "name" in top:
            self.guard(lambda: app.__setitem__("name", as_str(top["name"], ("name",))), ("name",))
        services = top.get("services")
        if services is None:
            self.out.error((), "no `services`: a Compose file needs at least one service")
        elif not isinstance(services, dict) or not services:
            self.out.error(("services",), "expected a mapping of service names to services")
        else:
            for sname, svc in services.items():
                path: Path = ("services", sname)
                if not isinstance(svc, dict):
                    self.out.error(path, "expected a mapping (the service's settings)")
                    continue
                app["services"][sname] = self.service(sname, svc, path)
        for kind, keys in (("volumes", VOLUME_KEYS), ("networks", NETWORK_KEYS)):
            section = top.get(kind)
            if section is None:
                continue
            if not isinstance(section, dict):
                self.out.error((kind,), f"expected a mapping of {kind} names")
                continue
            for name, spec in section.items():
                try:
                    app[kind][name] = self.top_level(kind, name, spec, keys)
                except Invalid as e:
                    self.out.error(e.path, e.message, hint=e.hint)
        # Compose's implicit `default` network may be named without being declared
        if any("default" in s.get("networks", {}) for s in app["services"].values()):
            app["networks"].setdefault("default", {})
        self.out.raise_if_any()
        return self.validate(app)

    def interpolated(self, value: Any, path: Path) -> Any:
        if isinstance(value, str):
            try:
                return interpolate(value, self.env)
            except InterpolationError as e:
                self.out.error(path, e.message)
                return value
        if isinstance(value, dict):
            return {k: self.interpolated(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.interpolated(v, (*path, i)) for i, v in enumerate(value)]
        return value

    def validate(self, data: dict[str, Any]) -> App:
        try:
            app = App.model_validate(data, context={DEFER_CHECKS: True})
        except ValidationError as e:
            for err in e.errors():
                self.out.error(self.raw_loc(tuple(err["loc"])), pydantic_message(err))
            self.out.raise_if_any()
            raise  # pragma: no cover - every error above was reported
        for p in app.problems():
            self.out.error(self.raw_loc(p.loc), p.message, at="key")
        self.out.raise_if_any()
        return app

    def raw_loc(self, loc: tuple[Any, ...]) -> Path:
        """A model location -> the path of the key in the file it came from."""
        loc = tuple("x-fusion" if k == "x_fusion" else k for k in loc)
        for n in range(len(loc), 3, -1):
            if loc[:n] in self.alias:
                return (*self.alias[loc[:n]], *loc[n:])
        if len(loc) >= 4 and loc[0] == "services" and isinstance(loc[3], int):
            origins = {"ports": self.port_origin, "volumes": self.mount_origin}.get(str(loc[2]), {})
            table = origins.get(str(loc[1]), [])
            if loc[3] < len(table):
                return (*table[loc[3]], *loc[4:])
        return loc

    # -- one service --

    def service(self, sname: str, svc: dict[str, Any], path: Path) -> dict[str, Any]:
        if (why := name_problem(sname)) is not None:
            self.out.error(path, why, at="key")
        raw = self.check_keys(svc, path, SERVICE_KEYS, SERVICE_UNSUPPORTED, extensions=True)
        out: dict[str, Any] = {}
        if "image" not in raw and "build" not in svc:
            self.out.error(
                path, "missing required key 'image' (Fusion runs images, it does not build them)", at="key"
            )

        def put(key: str, fn: Callable[[Any, Path], Any]) -> None:
            if key in raw:
                self.guard(lambda: out.__setitem__(key, fn(raw[key], (*path, key))), (*path, key))

        put("image", as_str)
        put("command", as_argv)
        put("entrypoint", as_argv)
        put("hostname", as_str)
        put("user", as_str)
        put("working_dir", as_str)
        put("stop_signal", lambda v, p: as_str(v, p).upper())  # Docker reads signal names in any case
        put("read_only", as_bool)
        put("init", as_bool)
        put("labels", as_str_map)
        put("cap_add", as_caps)
        put("cap_drop", as_caps)
        put("stop_grace_period", as_duration)
        put("healthcheck", self.healthcheck)
        put("depends_on", self.depends_on)
        put("networks", self.attachments)
        put("deploy", self.deploy)
        put("x-fusion", self.x_fusion)
        if "x-fusion" in out:
            out["x_fusion"] = out.pop("x-fusion")
        if "restart" in raw:
            self.guard(lambda: out.update(as_restart(raw["restart"], (*path, "restart"))), (*path, "restart"))

        environment: dict[str, str] = {}
        if "env_file" in raw:
            files: list[str] = []

            def env_files() -> None:
                for f, vars_ in self.env_files(raw["env_file"], (*path, "env_file")):
                    files.append(f)
                    environment.update(vars_)
                out["env_file"] = files

            self.guard(env_files, (*path, "env_file"))
        if "environment" in raw:
            self.guard(
                lambda: environment.update(self.environment(raw["environment"], (*path, "environment"))),
                (*path, "environment"),
            )
        if "env_file" in raw or "environment" in raw:
            out["environment"] = environment

        ports: list[Port] = []
        port_origin: list[Path] = []
        if "ports" in raw:
            for i, item in self.items(raw["ports"], (*path, "ports")):
                made = self.guarded(partial(self.port, item, (*path, "ports", i)), (*path, "ports", i))
                if made is None:
                    continue
                ports.extend(made)
                port_origin.extend([(*path, "ports", i)] * len(made))
            out["ports"] = ports
        self.port_origin[sname] = port_origin

        mounts: list[Mount] = []
        mount_origin: list[Path] = []
        for key, parse in (("volumes", self.mount), ("tmpfs", self.tmpfs)):
            if key not in raw:
                continue
            value = raw[key]
            if key == "tmpfs" and isinstance(value, str):
                value = [value]
            for i, item in self.items(value, (*path, key)):
                p = (*path, key, i)
                mount = self.guarded(partial(parse, item, p), p)
                if mount is not None:
                    mounts.append(mount)
                    mount_origin.append(p)
            out["volumes"] = mounts
        self.mount_origin[sname] = mount_origin
        return out

    def items(self, value: Any, path: Path) -> list[tuple[int, Any]]:
        if not isinstance(value, list):
            self.out.error(path, "expected a list")
            return []
        return list(enumerate(value))

    def environment(self, value: Any, path: Path) -> dict[str, str]:
        """Map or list form; a variable without a value comes from the load-time environment."""
        out: dict[str, str] = {}
        if isinstance(value, dict):
            pairs = [(k, v, (*path, k)) for k, v in value.items()]
        elif isinstance(value, list):
            pairs = []
            for i, item in enumerate(value):
                if not isinstance(item, str):
                    raise Invalid((*path, i), "expected VAR=value")
                k, sep, v = item.partition("=")
                pairs.append((k, v if sep else None, (*path, i)))
        else:
            raise Invalid(path, "expected a mapping or a list of VAR=value")
        for k, v, p in pairs:
            if not re.match(r"^[^\s=]+$", k):
                raise Invalid(p, f"bad variable name {k!r}")
            if v is None:
                if k in self.env:
                    out[k] = self.env[k]
            elif isinstance(v, dict | list):
                raise Invalid(p, "expected a plain value")
            else:
                out[k] = scalar(v)
        return out

    def env_files(self, value: Any, path: Path) -> list[tuple[str, dict[str, str]]]:
        entries = [value] if isinstance(value, str) else value
        if not isinstance(entries, list):
            raise Invalid(path, "expected a path or a list of paths")
        out: list[tuple[str, dict[str, str]]] = []
        for i, entry in enumerate(entries):
            p: Path = path if isinstance(value, str) else (*path, i)
            required = True
            if isinstance(entry, dict):
                entry = self.check_keys(entry, p, {"path", "required"}, {"format": None})
                if "path" not in entry:
                    raise Invalid(p, "missing required key 'path'")
                required = as_bool(entry.get("required", True), (*p, "required"))
                entry = entry["path"]
            if not isinstance(entry, str):
                raise Invalid(p, "expected a path")
            file = self.base_dir / entry
            try:
                text = self.read_text(file)
            except FileNotFoundError:
                if not required:
                    continue
                raise Invalid(p, f"env file {str(file)!r} not found") from None
            except OSError as e:
                raise Invalid(p, f"cannot read env file {str(file)!r}: {e.strerror}") from None
            try:
                out.append((entry, parse_env_text(text, self.env)))
            except EnvFileError as e:
                raise Invalid(p, f"env file {entry}: {e.message}") from None
        return out

    def port(self, item: Any, path: Path) -> list[Port]:
        if isinstance(item, dict):
            spec = self.check_keys(item, path, PORT_KEYS, PORT_UNSUPPORTED)
            if spec.get("mode", "host") == "ingress":
                self.out.unsupported(
                    (*path, "mode"),
                    "ports mode: ingress",
                    "Fusion publishes on the host running each replica",
                )
            if "target" not in spec:
                raise Invalid(path, "missing required key 'target'")
            try:
                target = port_number(scalar(spec["target"]), "container port")
                published = (
                    port_number(scalar(spec["published"]), "host port")
                    if spec.get("published") not in (None, "")
                    else None
                )
            except ValueError as e:
                raise Invalid(path, str(e)) from None
            protocol = spec.get("protocol", "tcp")
            if protocol not in ("tcp", "udp"):
                raise Invalid((*path, "protocol"), f"bad protocol {protocol!r}: expected tcp or udp")
            host_ip = spec.get("host_ip")
            return [
                Port(
                    target=target,
                    published=published,
                    host_ip=as_str(host_ip, path) if host_ip else None,
                    protocol=protocol,
                )
            ]
        try:
            return parse_port(item)
        except ValidationError as e:
            raise Invalid(path, pydantic_message(e.errors()[0])) from None
        except ValueError as e:
            raise Invalid(path, str(e)) from None

    def mount(self, item: Any, path: Path) -> Mount:
        if isinstance(item, str):
            return self.short_mount(item, path)
        if not isinstance(item, dict):
            raise Invalid(path, "expected SOURCE:TARGET[:MODE] or a mapping")
        spec = self.check_keys(item, path, MOUNT_KEYS, MOUNT_UNSUPPORTED)
        kind = spec.get("type")
        if kind not in ("volume", "bind", "tmpfs"):
            if kind in ("npipe", "cluster", "image"):
                self.out.unsupported((*path, "type"), f"volume type {kind}")
                raise Invalid(path, f"volume type {kind} is not supported")
            raise Invalid((*path, "type"), f"bad volume type {kind!r}: expected volume, bind or tmpfs")
        if "target" not in spec:
            raise Invalid(path, "missing required key 'target'")
        fields: dict[str, Any] = {"type": kind, "target": as_target(spec["target"], (*path, "target"))}
        if "read_only" in spec:
            fields["read_only"] = as_bool(spec["read_only"], (*path, "read_only"))
        source = spec.get("source")
        if kind == "bind":
            if not source:
                raise Invalid(path, "a bind mount needs a source")
            fields["source"] = self.host_path(as_str(source, (*path, "source")))
            opts = spec.get("bind") or {}
            opts = self.check_keys(opts, (*path, "bind"), {"propagation", "create_host_path", "selinux"})
            if "propagation" in opts:
                fields["propagation"] = as_str(opts["propagation"], (*path, "bind", "propagation"))
            if "create_host_path" in opts:
                fields["create_host_path"] = as_bool(
                    opts["create_host_path"], (*path, "bind", "create_host_path")
                )
            if "selinux" in opts:
                if opts["selinux"] not in ("z", "Z"):
                    raise Invalid((*path, "bind", "selinux"), "expected z or Z")
                fields["selinux"] = opts["selinux"]
        elif kind == "volume":
            if source:
                fields["source"] = as_volume_name(source, (*path, "source"))
            opts = spec.get("volume") or {}
            opts = self.check_keys(opts, (*path, "volume"), {"nocopy"}, {"subpath": None})
            if "nocopy" in opts:
                fields["nocopy"] = as_bool(opts["nocopy"], (*path, "volume", "nocopy"))
        else:
            if source:
                raise Invalid((*path, "source"), "a tmpfs mount has no source")
            opts = spec.get("tmpfs") or {}
            opts = self.check_keys(opts, (*path, "tmpfs"), {"size", "mode"})
            if "size" in opts:
                fields["tmpfs_size"] = as_size(opts["size"], (*path, "tmpfs", "size"))
            if "mode" in opts:
                fields["tmpfs_mode"] = as_mode(opts["mode"], (*path, "tmpfs", "mode"))
        return Mount(**fields)

    def short_mount(self, text: str, path: Path) -> Mount:
        parts = text.split(":")
        if len(parts) > 3 or not all(parts):
            raise Invalid(path, f"bad volume {text!r}: expected [SOURCE:]TARGET[:MODE]")
        if len(parts) == 1:
            return Mount(type="volume", target=as_target(parts[0], path))
        source, target = parts[0], as_target(parts[1], path)
        modes = parts[2].split(",") if len(parts) == 3 else []
        bind = source.startswith(("/", ".", "~"))
        fields: dict[str, Any] = {"type": "bind" if bind else "volume", "target": target}
        fields["source"] = self.host_path(source) if bind else as_volume_name(source, path)
        for mode in modes:
            if mode in ("ro", "rw"):
                fields["read_only"] = mode == "ro"
            elif mode in ("z", "Z") and bind:
                fields["selinux"] = mode
            elif mode in ("shared", "rshared", "slave", "rslave", "private", "rprivate") and bind:
                fields["propagation"] = mode
            elif mode == "nocopy" and not bind:
                fields["nocopy"] = True
            else:
                raise Invalid(path, f"bad volume mode {mode!r} in {text!r}")
        return Mount(**fields)

    def host_path(self, source: str) -> str:
        if source.startswith("~"):
            home = self.env.get("HOME", "~")
            source = home + source[1:]
        return os.path.normpath(self.base_dir / source)

    def tmpfs(self, item: Any, path: Path) -> Mount:
        if not isinstance(item, str):
            raise Invalid(path, "expected a path (optionally PATH:size=64m,mode=1777)")
        target, _, options = item.partition(":")
        fields: dict[str, Any] = {"type": "tmpfs", "target": as_target(target, path)}
        for opt in filter(None, options.split(",")):
            k, _, v = opt.partition("=")
            if k == "size":
                fields["tmpfs_size"] = as_size(v, path)
            elif k == "mode":
                fields["tmpfs_mode"] = as_mode(v, path)
            elif k in ("ro", "rw"):
                fields["read_only"] = k == "ro"
            else:
                raise Invalid(path, f"unsupported tmpfs option {opt!r}: use size=, mode=, ro or rw")
        return Mount(**fields)

    def healthcheck(self, value: Any, path: Path) -> dict[str, Any]:
        spec = self.check_keys(as_mapping(value, path), path, HEALTH_KEYS)
        out: dict[str, Any] = {}
        test = spec.get("test")
        if isinstance(test, str):
            out["test"] = ["CMD-SHELL", test]
        elif isinstance(test, list):
            items = [scalar(t) for t in test]
            if items[:1] == ["NONE"]:
                out["disable"] = True
            elif items[:1] in (["CMD"], ["CMD-SHELL"]):
                out["test"] = items
            else:
                raise Invalid(
                    (*path, "test"), 'expected a string, ["CMD", ...], ["CMD-SHELL", "..."] or ["NONE"]'
                )
        elif test is not None:
            raise Invalid((*path, "test"), "expected a string or a list")
        for key in ("interval", "timeout", "start_period", "start_interval"):
            if key in spec:
                out[key] = as_duration(spec[key], (*path, key))
        if "retries" in spec:
            out["retries"] = spec["retries"]
        if "disable" in spec and as_bool(spec["disable"], (*path, "disable")):
            out["disable"] = True
            out.pop("test", None)
        return out

    def depends_on(self, value: Any, path: Path) -> dict[str, Any]:
        if isinstance(value, list):
            out: dict[str, Any] = {}
            for i, name in enumerate(value):
                if not isinstance(name, str):
                    raise Invalid((*path, i), "expected a service name")
                if name in out:
                    raise Invalid((*path, i), f"{name!r} is listed twice")
                out[name] = {}
                self.alias[(*path, name)] = (*path, i)
            return out
        out = {}
        for name, spec in as_mapping(value, path).items():
            p = (*path, name)
            spec = self.check_keys(as_mapping(spec if spec is not None else {}, p), p, DEPENDS_KEYS)
            dep: dict[str, Any] = {}
            if "condition" in spec:
                dep["condition"] = spec["condition"]
            for k in ("restart", "required"):
                if k in spec:
                    dep[k] = as_bool(spec[k], (*p, k))
            out[name] = dep
        return out

    def attachments(self, value: Any, path: Path) -> dict[str, Any]:
        if isinstance(value, list):
            out: dict[str, Any] = {}
            for i, name in enumerate(value):
                if not isinstance(name, str):
                    raise Invalid((*path, i), "expected a network name")
                out[name] = {}
                self.alias[(*path, name)] = (*path, i)
            return out
        out = {}
        for name, spec in as_mapping(value, path).items():
            p = (*path, name)
            spec = self.check_keys(
                as_mapping(spec if spec is not None else {}, p), p, {"aliases"}, ATTACH_UNSUPPORTED
            )
            out[name] = {
                "aliases": [
                    as_str(a, (*p, "aliases")) for a in as_list(spec.get("aliases", []), (*p, "aliases"))
                ]
            }
        return out

    def deploy(self, value: Any, path: Path) -> dict[str, Any]:
        spec = self.check_keys(as_mapping(value, path), path, DEPLOY_KEYS, DEPLOY_UNSUPPORTED)
        out: dict[str, Any] = {}
        mode = spec.get("mode", "replicated")
        if mode == "global":
            self.out.unsupported(
                (*path, "mode"), "deploy.mode: global", "set replicas, with max_replicas_per_node: 1"
            )
        elif mode != "replicated":
            raise Invalid((*path, "mode"), f"bad mode {mode!r}: expected replicated")
        if "replicas" in spec:
            out["replicas"] = spec["replicas"]
        if "labels" in spec:
            out["labels"] = as_str_map(spec["labels"], (*path, "labels"))
        if "placement" in spec:
            p = (*path, "placement")
            placement = self.check_keys(
                as_mapping(spec["placement"], p),
                p,
                {"constraints", "max_replicas_per_node"},
                {"preferences": None},
            )
            pl: dict[str, Any] = {}
            if "constraints" in placement:
                cs = []
                for i, c in enumerate(as_list(placement["constraints"], (*p, "constraints"))):
                    try:
                        cs.append(parse_constraint(as_str(c, (*p, "constraints", i))))
                    except ValueError as e:
                        raise Invalid((*p, "constraints", i), str(e)) from None
                pl["constraints"] = cs
            if "max_replicas_per_node" in placement:
                pl["max_replicas_per_node"] = placement["max_replicas_per_node"]
            out["placement"] = pl
        if "resources" in spec:
            p = (*path, "resources")
            res = self.check_keys(as_mapping(spec["resources"], p), p, {"limits", "reservations"})
            out["resources"] = {}
            for part in ("limits", "reservations"):
                if part not in res:
                    continue
                pp = (*p, part)
                keys = {"cpus", "memory", "pids"} if part == "limits" else {"cpus", "memory"}
                r = self.check_keys(
                    as_mapping(res[part], pp), pp, keys, {"devices": None, "generic_resources": None}
                )
                rr: dict[str, Any] = {}
                if "cpus" in r:
                    rr["cpus"] = as_cpus(r["cpus"], (*pp, "cpus"))
                if "memory" in r:
                    rr["memory"] = as_size(r["memory"], (*pp, "memory"))
                if "pids" in r:
                    rr["pids"] = r["pids"]
                out["resources"][part] = rr
        if "update_config" in spec:
            p = (*path, "update_config")
            uc = self.check_keys(
                as_mapping(spec["update_config"], p),
                p,
                {"parallelism", "delay", "order", "failure_action", "monitor", "max_failure_ratio"},
            )
            for k in ("delay", "monitor"):
                if k in uc:
                    uc[k] = as_duration(uc[k], (*p, k))
            out["update_config"] = uc
        if "restart_policy" in spec:
            p = (*path, "restart_policy")
            rp = self.check_keys(
                as_mapping(spec["restart_policy"], p), p, {"condition", "delay", "max_attempts", "window"}
            )
            for k in ("delay", "window"):
                if k in rp:
                    rp[k] = as_duration(rp[k], (*p, k))
            out["restart_policy"] = rp
        return out

    def x_fusion(self, value: Any, path: Path) -> dict[str, Any]:
        spec = self.check_keys(as_mapping(value, path), path, X_FUSION_KEYS)
        out: dict[str, Any] = {}
        if "min_available" in spec:
            out["min_available"] = spec["min_available"]
        if "links" in spec:
            links = []
            for i, link in enumerate(as_list(spec["links"], (*path, "links"))):
                p = (*path, "links", i)
                if isinstance(link, str):
                    links.append({"to": link})
                else:
                    links.append(self.check_keys(as_mapping(link, p), p, {"to", "ports"}))
            out["links"] = links
        return out

    def top_level(self, kind: str, name: str, spec: Any, keys: set[str]) -> dict[str, Any]:
        path: Path = (kind, name)
        if (why := name_problem(name)) is not None:
            raise Invalid(path, why)
        if spec is None:
            return {}
        unsupported = NETWORK_UNSUPPORTED if kind == "networks" else None
        out = self.check_keys(as_mapping(spec, path), path, keys, unsupported)
        if isinstance(out.get("external"), dict):
            self.out.unsupported((*path, "external"), "external.name", "use `external: true` with `name:`")
            out.pop("external")
        for k in ("driver_opts", "labels"):
            if k in out:
                out[k] = as_str_map(out[k], (*path, k))
        return out
