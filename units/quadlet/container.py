"""Quadlet ``.container`` files → systemd ``.service`` units, as podman 5.4.2's Quadlet does.

:func:`convert_container` is podman's ``ConvertContainer`` reimplemented: the same ``[Container]``
keys (anything else is an error), mapped to the same ``podman run`` arguments in the same order,
with the same ``[Unit]``/``[Service]`` lines (``KillMode=mixed``, ``Delegate=yes``,
``Type=notify``, ``ExecStop``/``ExecStopPost`` with ``--cidfile=%t/%N.cid``, network-online
ordering, ``RequiresMountsFor``, dependencies on ``.volume``/``.network``/``.pod``/``.image``/
``.build`` units...). The ``[Container]`` and ``[Quadlet]`` sections are kept as ``[X-Container]``
and ``[X-Quadlet]``; everything else the user wrote is kept as it is.

Side effects: none, except two that podman itself has and that the caller can replace through the
context: ``AddDevice=-/dev/x`` (a device that may be missing) asks whether the path exists
(``ctx.path_exists``, default :func:`os.path.exists`), and a relative path in a unit with no path
is made absolute against the current directory. Converting a container that joins a ``.pod``
records the container in the pod's :attr:`containers_to_start` (as podman does), which the pod
converter reads later.

Differences from podman, on purpose: where podman writes the "simple" options in random order
(Go map iteration), Fusion writes them in the order of :mod:`units.quadlet.container_keys`; where
podman crashes (``Mount=type=bind`` without a source, or with ``src=``), Fusion reports an error;
and a value that podman would write as a line ending in a backslash or in blanks (``Volume=/a\\:/b``
gives ``RequiresMountsFor=/a\\``, which systemd would join with the next line) is refused by
:class:`units.unitfile.UnitFile` with an error instead.

Values are read with podman 5.4.2's ``Lookup`` (:func:`_lookup`: every leading and trailing ``"``
stripped, ``Timezone="x`` gives ``x``), which is not quite :meth:`UnitFile.lookup` (one matching
pair, as later podman versions do).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable, Mapping

from specs.errors import Location
from units import systemd
from units.quadlet import container_keys as K
from units.quadlet.common import QuadletContext, QuadletError, UnitInfo
from units.unitfile import UnitFile

__all__ = [
    "ContainerError",
    "convert_container",
    "container_name",
    "container_resource_name",
    "container_service_name",
]


class ContainerError(QuadletError):
    """A ``.container`` file that Quadlet refuses. ``.what`` is podman's own message."""


# ---------------------------------------------------------------------------------------------
# podman's lookups (pkg/systemd/parser, as in 5.4.2)


def _lookup(unit: UnitFile, group: str, key: str) -> str | None:
    """podman 5.4's ``Lookup``: last value, trailing blanks and every surrounding ``"`` removed."""
    v = unit.lookup_last(group, key)
    if v is None:
        return None
    return v.rstrip(systemd.GO_SPACE).strip('"')


def _lookup_bool(unit: UnitFile, group: str, key: str) -> bool | None:
    v = _lookup(unit, group, key)
    if v is None:
        return None
    return v.lower() in ("1", "yes", "true", "on")


def _lookup_bool_default(unit: UnitFile, group: str, key: str, default: bool) -> bool:
    v = _lookup_bool(unit, group, key)
    return default if v is None else v


def _split_args(value: str) -> list[str] | None:
    """Exec-style split (unquote, C escapes, relaxed); None when podman's splitter fails."""
    try:
        return systemd.split_command_line(value, keep_empty=False)
    except systemd.SplitError:
        return None


def _lookup_all_args(unit: UnitFile, group: str, key: str) -> list[str]:
    out: list[str] = []
    for value in unit.lookup_all(group, key):
        words = _split_args(value)
        if words is not None:
            out.extend(words)
    return out


def _lookup_last_args(unit: UnitFile, group: str, key: str) -> list[str] | None:
    value = unit.lookup_last(group, key)
    return None if value is None else _split_args(value)


def _lookup_all_key_val(unit: UnitFile, group: str, key: str) -> dict[str, str]:
    """podman 5.4's ``LookupAllKeyVal``: ``K=V`` words; later keys win; words without ``=`` dropped."""
    res: dict[str, str] = {}
    for value in unit.lookup_all(group, key):
        for word in _split_args(value) or []:
            k, sep, v = word.partition("=")
            if sep:
                res[k] = v
    return res


# ---------------------------------------------------------------------------------------------
# Names


def _remove_extension(name: str, prefix: str = "", suffix: str = "") -> str:
    dot = name.rfind(".")
    base = name[:dot] if dot > 0 else name
    return prefix + base + suffix


def container_service_name(unit: UnitFile) -> str:
    """The service a ``.container`` becomes (``ServiceName=`` or the file name without extension)."""
    name = _lookup(unit, K.CONTAINER_GROUP, "ServiceName")
    return name if name is not None else _remove_extension(unit.filename)


def container_name(unit: UnitFile) -> str:
    """The ``--name`` of the container, unresolved (may hold ``%`` specifiers)."""
    name = _lookup(unit, K.CONTAINER_GROUP, "ContainerName")
    if name:
        return name
    return "systemd-%p_%i" if "@" in unit.filename else "systemd-%N"


def container_resource_name(unit: UnitFile) -> str:
    """The container name with ``%N`` resolved; ``""`` if another specifier remains (podman's rule)."""
    resolved = container_name(unit).replace("%N", container_service_name(unit))
    return "" if "%" in resolved else resolved


# ---------------------------------------------------------------------------------------------
# Small podman helpers


def _go_clean(path: str) -> str:
    """Go's ``filepath.Clean`` (like ``normpath``, but ``//x`` becomes ``/x``)."""
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


def _starts_with_specifier(path: str) -> bool:
    return path.startswith("%") and not path.startswith("%%")


def _absolute_path(unit: UnitFile, path: str) -> str:
    """podman's ``getAbsolutePath``: relative paths are relative to the Quadlet file's directory."""
    if _starts_with_specifier(path) or path.startswith("/"):
        return path
    if unit.path:
        return _go_clean(posixpath.join(posixpath.dirname(unit.path), path))
    return _go_clean(os.path.abspath(path))


_PORT_RANGE = re.compile(r"[0-9]+(-[0-9]+)?(/udp|/tcp)?$")  # unanchored at the start, as podman's


def _add_bool(args: list[str], flag: str, value: bool) -> None:
    args.append(flag if value else f"{flag}=false")


def _add_keys(args: list[str], flag: str, keyvals: Mapping[str, str]) -> None:
    for k in sorted(keyvals):
        args.extend((flag, f"{k}={keyvals[k]}"))


def _read_csv_record(text: str) -> list[list[str]]:
    """Go's ``encoding/csv`` reader (strict quotes) on ``text``: its records."""
    records: list[list[str]] = []
    fields: list[str] = []
    i, n, line = 0, len(text), 1
    if not text:
        return records
    while True:
        if i < n and text[i] == '"':
            start_col = i + 1
            i += 1
            buf: list[str] = []
            while True:
                if i >= n:
                    raise ValueError(
                        f'parse error on line {line}, column {start_col}: extraneous or missing " in quoted-field'
                    )
                c = text[i]
                if c == '"':
                    if i + 1 < n and text[i + 1] == '"':
                        buf.append('"')
                        i += 2
                        continue
                    i += 1
                    if i < n and text[i] not in ",\n":
                        raise ValueError(
                            f'parse error on line {line}, column {i + 1}: extraneous or missing " in quoted-field'
                        )
                    break
                if c == "\n":
                    line += 1
                buf.append(c)
                i += 1
            fields.append("".join(buf))
        else:
            j = i
            while j < n and text[j] not in ",\n":
                if text[j] == '"':
                    raise ValueError(
                        f'parse error on line {line}, column {j + 1}: bare " in non-quoted-field'
                    )
                j += 1
            fields.append(text[i:j])
            i = j
        if i >= n:
            records.append(fields)
            return records
        if text[i] == ",":
            i += 1
            if i >= n:
                fields.append("")
                records.append(fields)
                return records
            continue
        # newline: end of record; blank lines are skipped
        records.append(fields)
        fields = []
        i += 1
        line += 1
        while i < n and text[i] == "\n":
            i += 1
            line += 1
        if i >= n:
            return records


def _csv_field(field: str) -> str:
    needs = field != "" and (
        field == "\\." or any(c in field for c in '",\r\n') or field[0] in systemd.GO_SPACE
    )
    return '"' + field.replace('"', '""') + '"' if needs else field


class _Converter:
    """One conversion: the Quadlet unit in, the service unit and podman's arguments built up."""

    def __init__(self, unit: UnitFile, ctx: QuadletContext, path_exists: Callable[[str], bool]) -> None:
        self.unit = unit
        self.ctx = ctx
        self.path_exists = path_exists
        self.service = unit.dup()
        self.warnings: list[str] = []

    # -- errors and lookups --------------------------------------------------------------------

    def error(self, message: str, key: str = "") -> ContainerError:
        where = Location(self.unit.path or self.unit.filename)
        return ContainerError(message, where=where, path=f"[{K.CONTAINER_GROUP}] {key}" if key else "")

    def get(self, key: str) -> str | None:
        return _lookup(self.unit, K.CONTAINER_GROUP, key)

    def base_command(self) -> list[str]:
        """``podman`` plus ``--module=`` and ``GlobalArgs=`` (podman's ``createBasePodmanCommand``)."""
        args = [self.ctx.podman]
        for module in self.unit.lookup_all(K.CONTAINER_GROUP, "ContainersConfModule"):
            args.append(f"--module={module}")
        args.extend(_lookup_all_args(self.unit, K.CONTAINER_GROUP, "GlobalArgs"))
        return args

    def info(self, name: str) -> UnitInfo | None:
        return self.ctx.info(name)

    def require(self, service_file: str) -> None:
        self.service.add(K.UNIT_GROUP, "Requires", service_file)
        self.service.add(K.UNIT_GROUP, "After", service_file)

    # -- the conversion ------------------------------------------------------------------------

    def convert(self) -> tuple[UnitFile, list[str]]:
        unit, service = self.unit, self.service
        info = self.info(unit.filename)
        if info is None:
            raise self.error(f"internal error while processing container {unit.filename}")
        service.filename = f"{info.service_name}.service"
        service.path = ""

        if _lookup_bool_default(unit, K.QUADLET_GROUP, "DefaultDependencies", True):
            target = (
                "podman-user-wait-network-online.service" if self.ctx.is_user else "network-online.target"
            )
            service.prepend(K.UNIT_GROUP, "After", target)
            service.prepend(K.UNIT_GROUP, "Wants", target)
        if unit.path:
            service.add(K.UNIT_GROUP, "SourcePath", unit.path)

        self.check_keys()
        service.rename_section(K.CONTAINER_GROUP, K.X_CONTAINER_GROUP)
        service.rename_section(K.QUADLET_GROUP, K.X_QUADLET_GROUP)

        image = self.get("Image") or ""
        rootfs = self.get("Rootfs") or ""
        if not image and not rootfs:
            raise self.error("no Image or Rootfs key specified")
        if image and rootfs:
            raise self.error("the Image And Rootfs keys conflict can not be specified together", "Rootfs")
        if image:
            image = self.image_source(image)

        name = container_name(unit)
        service.add(K.SERVICE_GROUP, "Environment", "PODMAN_SYSTEMD_UNIT=%n")
        kill_mode = _lookup(service, K.SERVICE_GROUP, "KillMode")
        if kill_mode is None:
            service.set_last(K.SERVICE_GROUP, "KillMode", "mixed")
        elif kill_mode not in ("mixed", "control-group"):
            raise self.error(f"invalid KillMode '{kill_mode}'")

        env = _lookup_all_key_val(unit, K.CONTAINER_GROUP, "Environment")
        service.add(K.UNIT_GROUP, "RequiresMountsFor", "%t/containers")

        stop = [*self.base_command(), "rm", "-v", "-f", "-i", "--cidfile=%t/%N.cid"]
        service.add_cmdline(K.SERVICE_GROUP, "ExecStop", stop, literal=False)
        stop[0] = "-" + stop[0]
        service.add_cmdline(K.SERVICE_GROUP, "ExecStopPost", stop, literal=False)

        args = [*self.base_command(), "run", "--name", name, "--cidfile=%t/%N.cid", "--replace", "--rm"]
        log_driver = self.get("LogDriver")
        if log_driver is not None:
            args.extend(("--log-driver", log_driver))
        for opt in unit.lookup_all_strv(K.CONTAINER_GROUP, "LogOpt"):
            args.extend(("--log-opt", opt))
        service.add(K.SERVICE_GROUP, "Delegate", "yes")
        cgroups = self.get("CgroupsMode")
        args.extend(("--cgroups", cgroups) if cgroups else ("--cgroups=split",))

        for key, flag in K.STRING_KEYS:
            value = self.get(key)
            if value:
                args.extend((flag, value))
        for key, flag in K.ALL_STRINGS_KEYS:
            for value in unit.lookup_all(K.CONTAINER_GROUP, key):
                args.extend((flag, value))
        for key, flag in K.BOOL_KEYS:
            b = _lookup_bool(unit, K.CONTAINER_GROUP, key)
            if b is not None:
                _add_bool(args, flag, b)

        self.networks(args)
        self.notify(args)
        if not unit.has_key(K.SERVICE_GROUP, "SyslogIdentifier"):
            service.set_last(K.SERVICE_GROUP, "SyslogIdentifier", "%N")

        self.security(args)
        self.devices(args)
        seccomp = self.get("SeccompProfile")
        if seccomp is not None:
            args.extend(("--security-opt", f"seccomp={seccomp}"))
        for cap in unit.lookup_all_strv(K.CONTAINER_GROUP, "DropCapability"):
            args.extend(("--cap-drop", cap.lower()))
        for cap in unit.lookup_all_strv(K.CONTAINER_GROUP, "AddCapability"):
            args.extend(("--cap-add", cap.lower()))
        for item in unit.lookup_all_strv(K.CONTAINER_GROUP, "Sysctl"):
            args.extend(("--sysctl", item))

        read_only = _lookup_bool(unit, K.CONTAINER_GROUP, "ReadOnly")
        if read_only is not None:
            _add_bool(args, "--read-only", read_only)
        if _lookup_bool_default(unit, K.CONTAINER_GROUP, "VolatileTmp", False) and not read_only:
            args.extend(("--tmpfs", "/tmp:rw,size=512M,mode=1777"))

        self.user(args)
        self.user_mappings(args)
        self.volumes(args)

        update = self.get("AutoUpdate")
        if update:
            _add_keys(args, "--label", {K.AUTO_UPDATE_LABEL: update})
        for port in unit.lookup_all(K.CONTAINER_GROUP, "ExposeHostPort"):
            port = port.strip(systemd.GO_SPACE)
            if not _PORT_RANGE.search(port):
                raise self.error(f"invalid port format '{port}'", "ExposeHostPort")
            args.extend(("--expose", port))
        for port in unit.lookup_all(K.CONTAINER_GROUP, "PublishPort"):
            args.extend(("--publish", port))

        _add_keys(args, "--env", env)
        _add_keys(args, "--label", _lookup_all_key_val(unit, K.CONTAINER_GROUP, "Label"))
        _add_keys(args, "--annotation", _lookup_all_key_val(unit, K.CONTAINER_GROUP, "Annotation"))
        for mask in _lookup_all_args(unit, K.CONTAINER_GROUP, "Mask"):
            args.extend(("--security-opt", f"mask={mask}"))
        for unmask in _lookup_all_args(unit, K.CONTAINER_GROUP, "Unmask"):
            args.extend(("--security-opt", f"unmask={unmask}"))
        for env_file in _lookup_all_args(unit, K.CONTAINER_GROUP, "EnvironmentFile"):
            args.extend(("--env-file", _absolute_path(unit, env_file)))
        for secret in _lookup_all_args(unit, K.CONTAINER_GROUP, "Secret"):
            args.extend(("--secret", secret))
        for mount in _lookup_all_args(unit, K.CONTAINER_GROUP, "Mount"):
            args.extend(("--mount", self.mount(mount)))

        for key, option in K.HEALTH_KEYS:
            value = self.get(key)
            if value:
                args.extend((f"--health-{option}", value))

        self.pod(args)
        args.extend(_lookup_all_args(unit, K.CONTAINER_GROUP, "PodmanArgs"))
        args.extend((image,) if image else ("--rootfs", rootfs))
        exec_args = _lookup_last_args(unit, K.CONTAINER_GROUP, "Exec")
        if exec_args:
            args.extend(exec_args)
        service.add_cmdline(K.SERVICE_GROUP, "ExecStart", args, literal=False)
        return service, self.warnings

    # -- pieces ----------------------------------------------------------------------------------

    def check_keys(self) -> None:
        for group, supported in (
            (K.CONTAINER_GROUP, K.SUPPORTED_KEYS),
            (K.QUADLET_GROUP, K.SUPPORTED_QUADLET_KEYS),
        ):
            for key in self.unit.keys(group):
                if key not in supported:
                    raise ContainerError(
                        f"unsupported key '{key}' in group '{group}' in {self.unit.path}",
                        where=Location(self.unit.path or self.unit.filename),
                        path=f"[{group}] {key}",
                    )

    def image_source(self, image: str) -> str:
        for suffix in (".build", ".image"):
            if image.endswith(suffix):
                info = self.info(image)
                if info is None:
                    raise self.error(f"requested Quadlet image {image} was not found", "Image")
                self.require(f"{info.service_name}.service")
                image = info.resource_name
        return image

    def networks(self, args: list[str]) -> None:
        for network in self.unit.lookup_all(K.CONTAINER_GROUP, "Network"):
            name, found, options = network.partition(":")
            is_network, is_container = name.endswith(".network"), name.endswith(".container")
            if is_network or is_container:
                info = self.info(name)
                if info is None:
                    raise self.error(f"requested Quadlet unit {name} was not found", "Network")
                if not info.resource_name:
                    raise self.error(f"cannot get the resource name of {name}", "Network")
                self.require(f"{info.service_name}.service")
                if found:
                    if is_container:
                        raise self.error(
                            "extra options are not supported when joining another container's network",
                            "Network",
                        )
                    network = f"{info.resource_name}:{options}"
                else:
                    network = f"container:{info.resource_name}" if is_container else info.resource_name
            args.extend(("--network", network))

    def notify(self, args: list[str]) -> None:
        service_type = _lookup(self.service, K.SERVICE_GROUP, "Type")
        if service_type is not None and service_type not in ("notify", "oneshot"):
            raise self.error(f"invalid service Type '{service_type}'")
        if service_type == "oneshot":
            return
        notify = self.get("Notify")
        if notify is not None and notify.lower() == "healthy":
            args.append("--sdnotify=healthy")
        elif _lookup_bool_default(self.unit, K.CONTAINER_GROUP, "Notify", False):
            args.append("--sdnotify=container")
        else:
            args.append("--sdnotify=conmon")
        self.service.set_last(K.SERVICE_GROUP, "Type", "notify")
        self.service.set_last(K.SERVICE_GROUP, "NotifyAccess", "all")
        args.append("-d")

    def security(self, args: list[str]) -> None:
        unit = self.unit
        if _lookup_bool_default(unit, K.CONTAINER_GROUP, "NoNewPrivileges", False):
            args.append("--security-opt=no-new-privileges")
        if _lookup_bool_default(unit, K.CONTAINER_GROUP, "SecurityLabelDisable", False):
            args.extend(("--security-opt", "label=disable"))
        if _lookup_bool_default(unit, K.CONTAINER_GROUP, "SecurityLabelNested", False):
            args.extend(("--security-opt", "label=nested"))
        for key, label in (
            ("SecurityLabelType", "type"),
            ("SecurityLabelFileType", "filetype"),
            ("SecurityLabelLevel", "level"),
        ):
            value = self.get(key)
            if value:
                args.extend(("--security-opt", f"label={label}:{value}"))

    def devices(self, args: list[str]) -> None:
        for device in self.unit.lookup_all_strv(K.CONTAINER_GROUP, "AddDevice"):
            if device.startswith("-"):
                device = device[1:]
                if not self.path_exists(device.split(":")[0]):
                    continue
            args.extend(("--device", device))

    def user(self, args: list[str]) -> None:
        user, group = self.get("User"), self.get("Group")
        if not user:
            if group:
                raise self.error("invalid Group set without User", "Group")
            return
        args.extend(("--user", f"{user}:{group}" if group else user))

    def user_mappings(self, args: list[str]) -> None:
        unit = self.unit
        defined = False
        userns = self.get("UserNS")
        if userns:
            args.extend(("--userns", userns))
            defined = True
        for key, flag in (("UIDMap", "--uidmap"), ("GIDMap", "--gidmap")):
            maps = unit.lookup_all_strv(K.CONTAINER_GROUP, key)
            defined = defined or bool(maps)
            for m in maps:
                args.extend((flag, m))
        for key, flag in (("SubUIDMap", "--subuidname"), ("SubGIDMap", "--subgidname")):
            value = self.get(key)
            if value:
                args.extend((flag, value))
                defined = True
        if defined:
            if any(unit.has_key(K.CONTAINER_GROUP, k) for k in ("RemapUid", "RemapGid", "RemapUsers")):
                raise self.error("deprecated Remap keys are set along with explicit mapping keys")
            return
        self.user_remap(args)

    def user_remap(self, args: list[str]) -> None:
        unit = self.unit
        uid_maps = unit.lookup_all_strv(K.CONTAINER_GROUP, "RemapUid")
        gid_maps = unit.lookup_all_strv(K.CONTAINER_GROUP, "RemapGid")
        remap = unit.lookup_last(K.CONTAINER_GROUP, "RemapUsers") or ""
        if remap == "":
            if uid_maps:
                raise self.error("UidMap set without RemapUsers", "RemapUid")
            if gid_maps:
                raise self.error("GidMap set without RemapUsers", "RemapGid")
        elif remap == "manual":
            for m in uid_maps:
                args.extend(("--uidmap", m))
            for m in gid_maps:
                args.extend(("--gidmap", m))
        elif remap == "auto":
            opts = [f"uidmapping={m}" for m in uid_maps] + [f"gidmapping={m}" for m in gid_maps]
            size = unit.lookup_uint32(K.CONTAINER_GROUP, "RemapUidSize", 0)
            if size > 0:
                opts.append(f"size={size}")
            args.extend(("--userns", "auto" + (":" + ",".join(opts) if opts else "")))
        elif remap == "keep-id":
            opts = []
            for maps, what, prefix in ((uid_maps, "UID", "uid"), (gid_maps, "GID", "gid")):
                if len(maps) > 1:
                    raise self.error(f"RemapUsers=keep-id supports only a single value for {what} mapping")
                if maps:
                    opts.append(f"{prefix}={maps[0]}")
            args.extend(("--userns", "keep-id" + (":" + ",".join(opts) if opts else "")))
        else:
            raise self.error(f"unsupported RemapUsers option '{remap}'", "RemapUsers")

    def storage_source(self, source: str, check_image: bool, key: str) -> str:
        """podman's ``handleStorageSource``: resolve a host path or a ``.volume``/``.image`` unit."""
        if not source:
            raise self.error("source parameter is empty", key)
        if source.startswith("."):
            source = _absolute_path(self.unit, source)
        if source.startswith("/"):
            self.service.add(K.UNIT_GROUP, "RequiresMountsFor", source)
        elif source.endswith(".volume") or (check_image and source.endswith(".image")):
            info = self.info(source)
            if info is None:
                raise self.error(f"requested Quadlet source {source} was not found", key)
            self.require(f"{info.service_name}.service")
            source = info.resource_name
        return source

    def volumes(self, args: list[str]) -> None:
        for volume in self.unit.lookup_all(K.CONTAINER_GROUP, "Volume"):
            parts = volume.split(":", 2)
            source, dest, options = "", parts[0], ""
            if len(parts) >= 2:
                source, dest = parts[0], parts[1]
            if len(parts) >= 3:
                options = ":" + parts[2]
            if source:
                source = self.storage_source(source, False, "Volume")
            args.append("-v")
            args.append(f"{source}:{dest}{options}" if source else dest)

    def mount(self, mount: str) -> str:
        """podman's ``resolveContainerMountParams``: the ``--mount`` value with its source resolved."""
        try:
            records = _read_csv_record(mount)
        except ValueError as e:
            raise self.error(str(e), "Mount") from None
        if len(records) != 1:
            raise self.error(K.MOUNT_FORMAT_ERROR, "Mount")
        tokens: list[str] = []
        mount_type = ""
        for field in records[0]:
            kv = field.split("=")
            if mount_type or len(kv) != 2 or kv[0] != "type":
                tokens.append(field)
                continue
            mount_type = kv[1]
        if not mount_type:
            raise self.error(K.MOUNT_FORMAT_ERROR, "Mount")
        if mount_type not in K.MOUNT_TYPES_WITH_SOURCE:
            return mount
        source_index, source = -1, ""
        for i, token in enumerate(tokens):
            key, has_value, value = token.partition("=")
            if key in ("source", "src"):
                if not has_value:
                    raise self.error("source parameter does not include a value", "Mount")
                source_index, source = i, value
        if source_index < 0:
            # podman 5.4.2 crashes here (index out of range); report it instead.
            raise self.error(f"the {mount_type} mount has no source parameter", "Mount")
        tokens[source_index] = f"source={self.storage_source(source, True, 'Mount')}"
        return ",".join(_csv_field(t) for t in [f"type={mount_type}", *tokens])

    def pod(self, args: list[str]) -> None:
        pod = self.get("Pod")
        if not pod:
            return
        if not pod.endswith(".pod"):
            raise self.error(f"pod {pod} is not Quadlet based", "Pod")
        info = self.info(pod)
        if info is None:
            raise self.error(f"quadlet pod unit {pod} does not exist", "Pod")
        args.extend(("--pod-id-file", f"%t/{info.service_name}.pod-id"))
        pod_service = f"{info.service_name}.service"
        self.service.add(K.UNIT_GROUP, "BindsTo", pod_service)
        self.service.add(K.UNIT_GROUP, "After", pod_service)
        if _lookup_bool_default(self.unit, K.CONTAINER_GROUP, "StartWithPod", True):
            info.containers_to_start.append(self.service.filename)


def convert_container(unit: UnitFile, ctx: QuadletContext) -> tuple[UnitFile, list[str]]:
    """Convert a parsed ``.container`` unit (drop-ins merged) into its ``.service`` unit.

    Returns ``(service, warnings)``. ``ctx.units`` must hold an entry for every Quadlet unit
    by file name (this one included), as podman's ``unitsInfoMap``. Raises :class:`ContainerError`
    (its ``.what`` is podman's message) for a file podman's Quadlet refuses.
    """
    path_exists = getattr(ctx, "path_exists", None)
    if not callable(path_exists):
        path_exists = os.path.exists
    return _Converter(unit, ctx, path_exists).convert()
