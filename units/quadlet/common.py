"""What every Quadlet converter shares: the context, unit naming, key checks, the podman command line.

Pure: no I/O. (``get_absolute_path`` reads the current directory when a file has no path, as
podman does; ``QuadletContext.path_exists`` is the one question about the machine a converter may ask.) The semantics are podman 5.4.2's Quadlet
(``pkg/systemd/quadlet/quadlet.go``), reimplemented.

The converter contract (``.container`` in ``container.py``; ``.volume``, ``.network``, ``.pod`` in
their own modules)::

    def convert_xxx(unit: UnitFile, ctx: QuadletContext) -> tuple[UnitFile, list[str]]

``unit`` is the Quadlet file with its drop-ins merged (``unit.filename`` like ``web.container``,
``unit.path`` its full path or ""). The result is the ``.service`` unit (``filename`` set to the
service file name) and warnings (strings). A bad file raises :class:`QuadletError`; the generator
prints ``converting "web.container": <message>`` and exits 1 at the end.

:class:`QuadletContext` knows every loaded Quadlet file by file name (``ctx.units["db.volume"]``),
with its service name (``db-volume``) and podman resource name (``systemd-db``, or the
``VolumeName=``). The generator converts files in Quadlet's order (``.image``, then ``.volume`` and
``.network``, ``.build``, ``.container`` and ``.kube``, ``.pod`` last), and a converter records what
later ones need: ``convert_volume``/``convert_network`` set ``resource_name``; a container with
``Pod=x.pod`` appends its service file name to ``ctx.units["x.pod"].containers_to_start``.
"""

from __future__ import annotations

import dataclasses
import os.path
from collections.abc import Callable, Iterable

from specs.errors import SpecError
from units.unitfile import UnitFile

__all__ = [
    "QuadletError",
    "UnitInfo",
    "QuadletContext",
    "PodmanCommand",
    "SUPPORTED_KEYS",
    "EXTENSION_ORDER",
    "service_name_for",
    "container_name_for",
    "remove_extension",
    "resource_name_for",
    "unit_info_for",
    "init_service_unit",
    "base_podman_command",
    "check_unknown_keys",
    "add_strings",
    "add_all_strings",
    "add_booleans",
    "add_key_vals",
    "handle_podman_args",
    "handle_user_mappings",
    "handle_publish_ports",
    "add_networks",
    "add_volumes",
    "handle_storage_source",
    "handle_image_source",
    "get_absolute_path",
    "default_oneshot_service",
]

UNIT = "Unit"
SERVICE = "Service"
INSTALL = "Install"
QUADLET = "Quadlet"

PODMAN = "/usr/bin/podman"


class QuadletError(SpecError):
    """A Quadlet file cannot be converted (unknown key, conflicting keys, missing reference...)."""


@dataclasses.dataclass
class UnitInfo:
    """What other files need to know about one Quadlet file (podman's ``UnitInfo``)."""

    service_name: str  # without ".service", e.g. "db-volume"
    resource_name: str = ""  # the podman volume/network/pod/container/image name; "" if unknown
    containers_to_start: list[str] = dataclasses.field(default_factory=list)  # for .pod files

    @property
    def service_file_name(self) -> str:
        return f"{self.service_name}.service"


@dataclasses.dataclass
class QuadletContext:
    """Everything a converter may know beyond its own file.

    ``is_user``: generating for a user manager (``--user``). ``units``: every loaded Quadlet file
    by file name. ``podman``: the podman binary written into ``ExecStart=`` (podman honours
    ``$PODMAN``; the generator passes it in). ``path_exists``: how ``AddDevice=-/dev/x`` asks
    whether a path exists (the one question about the machine a converter may ask).
    """

    is_user: bool = False
    units: dict[str, UnitInfo] = dataclasses.field(default_factory=dict)
    podman: str = PODMAN
    path_exists: Callable[[str], bool] = os.path.exists

    def info(self, filename: str) -> UnitInfo | None:
        return self.units.get(filename)


# Which file types Quadlet knows, and the order it converts them in (lower first).
EXTENSION_ORDER: dict[str, int] = {
    ".image": 1,
    ".volume": 2,
    ".network": 2,
    ".build": 3,
    ".container": 4,
    ".kube": 4,
    ".pod": 5,
}

_GROUP_SUFFIX = {
    "container": ("Container", ""),
    "volume": ("Volume", "-volume"),
    "network": ("Network", "-network"),
    "pod": ("Pod", "-pod"),
    "kube": ("Kube", ""),
    "image": ("Image", "-image"),
    "build": ("Build", "-build"),
}

# The keys podman 5.4.2 accepts in each group (checked against the real generator).
SUPPORTED_KEYS: dict[str, frozenset[str]] = {
    "Volume": frozenset(
        ["ContainersConfModule", "Copy", "Device", "Driver", "GlobalArgs", "Group", "Image", "Label", "Options", "PodmanArgs", "ServiceName", "Type", "User", "VolumeName"]
    ),
    "Network": frozenset(
        ["Label", "DNS", "ContainersConfModule", "GlobalArgs", "DisableDNS", "Driver", "Gateway", "IPAMDriver", "IPRange", "IPv6", "Internal", "NetworkName", "Options", "ServiceName", "Subnet", "PodmanArgs"]
    ),
    "Pod": frozenset(
        ["AddHost", "ContainersConfModule", "DNS", "DNSOption", "DNSSearch", "GIDMap", "GlobalArgs", "IP", "IP6", "Network", "NetworkAlias", "PodName", "PodmanArgs", "PublishPort", "RemapGid", "RemapUid", "RemapUidSize", "RemapUsers", "ServiceName", "ShmSize", "SubGIDMap", "SubUIDMap", "UIDMap", "UserNS", "Volume"]
    ),
    QUADLET: frozenset({"DefaultDependencies"}),
}



def _ext(filename: str) -> str:
    return os.path.splitext(filename)[1]


def remove_extension(name: str, prefix: str = "", suffix: str = "") -> str:
    """podman's ``removeExtension``: ``db.volume`` → ``{prefix}db{suffix}``."""
    dot = name.rfind(".")
    base = name[:dot] if dot > 0 else name
    return prefix + base + suffix


def service_name_for(unit: UnitFile) -> str:
    """The service name (without ``.service``) Quadlet gives ``unit``: ``ServiceName=`` or derived."""
    kind = _ext(unit.filename).lstrip(".")
    group, suffix = _GROUP_SUFFIX[kind]
    explicit = unit.lookup(group, "ServiceName")
    if explicit is not None:
        return explicit
    return remove_extension(unit.filename, "", suffix)


def container_name_for(unit: UnitFile) -> str:
    """The unresolved container name (may contain ``%`` specifiers)."""
    name = unit.lookup("Container", "ContainerName")
    if not name:
        name = "systemd-%p_%i" if "@" in unit.filename else "systemd-%N"
    return name


def resource_name_for(unit: UnitFile) -> str:
    """The podman resource name Quadlet knows before converting (pods, containers, builds)."""
    kind = _ext(unit.filename)
    if kind == ".pod":
        return unit.lookup("Pod", "PodName") or remove_extension(unit.filename, "systemd-")
    if kind == ".container":
        name = container_name_for(unit).replace("%N", service_name_for(unit))
        return "" if "%" in name else name
    if kind == ".build":
        tags = unit.lookup_all("Build", "ImageTag")
        return tags[0] if tags else ""
    if kind == ".image":  # podman sets this while converting the .image file, which Fusion skips
        return unit.lookup("Image", "ImageTag") or unit.lookup("Image", "Image") or ""
    return ""


def unit_info_for(unit: UnitFile) -> UnitInfo:
    """The :class:`UnitInfo` the generator records for ``unit`` before converting anything."""
    return UnitInfo(service_name=service_name_for(unit), resource_name=resource_name_for(unit))


# ---------------------------------------------------------------------------------------------


class PodmanCommand:
    """A podman command line being built (podman's ``PodmanCmdline``)."""

    def __init__(self, podman: str = PODMAN) -> None:
        self.args: list[str] = [podman]

    def add(self, *args: str) -> None:
        self.args.extend(args)

    def add_keys(self, flag: str, keys: dict[str, str]) -> None:
        """``flag K=V`` for each key, sorted by key."""
        for k in sorted(keys):
            self.add(flag, f"{k}={keys[k]}")

    def add_bool(self, flag: str, value: bool) -> None:
        self.add(flag if value else f"{flag}=false")


def check_unknown_keys(unit: UnitFile, group: str) -> None:
    """Reject the first key of ``group`` (then of ``[Quadlet]``) that Quadlet does not know."""
    for g in (group, QUADLET):
        supported = SUPPORTED_KEYS.get(g, frozenset())
        for key in unit.keys(g):
            if key not in supported:
                raise QuadletError(f"unsupported key '{key}' in group '{g}' in {unit.path}")


def add_default_dependencies(service: UnitFile, ctx: QuadletContext) -> None:
    """``Wants=``/``After=network-online.target`` first in ``[Unit]`` (unless DefaultDependencies=no)."""
    enabled = service.lookup_bool(QUADLET, "DefaultDependencies")
    if enabled is None or enabled:
        target = "podman-user-wait-network-online.service" if ctx.is_user else "network-online.target"
        service.prepend(UNIT, "After", target)
        service.prepend(UNIT, "Wants", target)


def init_service_unit(unit: UnitFile, ctx: QuadletContext, group: str) -> tuple[UnitFile, UnitInfo]:
    """podman's ``initServiceUnitFile``: check keys, copy the file, add the common ``[Unit]`` lines.

    podman 5.4 does not translate ``After=x.volume`` style dependencies (later versions do).
    The copy keeps ``[Unit]``, ``[Service]``, ``[Install]`` and comments; ``[group]`` becomes
    ``[X-group]`` and ``[Quadlet]`` becomes ``[X-Quadlet]`` so that systemd ignores them.
    """
    info = ctx.info(unit.filename)
    if info is None:
        raise QuadletError(f"internal error while processing {unit.filename}")
    check_unknown_keys(unit, group)
    service = unit.dup()
    service.filename = info.service_file_name
    add_default_dependencies(service, ctx)
    if unit.path:
        service.add(UNIT, "SourcePath", unit.path)
    service.add(UNIT, "RequiresMountsFor", "%t/containers")
    service.rename_section(group, "X-" + group)
    service.rename_section(QUADLET, "X-" + QUADLET)
    return service, info


def base_podman_command(unit: UnitFile, group: str, ctx: QuadletContext) -> PodmanCommand:
    """``podman [--module=M]... [GlobalArgs...]``."""
    cmd = PodmanCommand(ctx.podman)
    for module in unit.lookup_all(group, "ContainersConfModule"):
        cmd.add(f"--module={module}")
    cmd.add(*unit.lookup_all_args(group, "GlobalArgs"))
    return cmd


def add_strings(unit: UnitFile, group: str, pairs: Iterable[tuple[str, str]], cmd: PodmanCommand) -> None:
    """For each (key, flag): ``flag value`` if the key has a non-empty last value.

    podman iterates a Go map here (random order between flags); Fusion uses the order given.
    """
    for key, flag in pairs:
        v = unit.lookup(group, key)
        if v:
            cmd.add(flag, v)


def add_all_strings(unit: UnitFile, group: str, pairs: Iterable[tuple[str, str]], cmd: PodmanCommand) -> None:
    """For each (key, flag): ``flag value`` for every value of the key."""
    for key, flag in pairs:
        for v in unit.lookup_all(group, key):
            cmd.add(flag, v)


def add_booleans(unit: UnitFile, group: str, pairs: Iterable[tuple[str, str]], cmd: PodmanCommand) -> None:
    """For each (key, flag) that is set: ``flag`` or ``flag=false``."""
    for key, flag in pairs:
        v = unit.lookup_bool(group, key)
        if v is not None:
            cmd.add_bool(flag, v)


def add_key_vals(unit: UnitFile, group: str, pairs: Iterable[tuple[str, str]], cmd: PodmanCommand) -> list[str]:
    """For each (key, flag): ``flag K=V`` for every assignment, sorted by K (podman's ``addKeys``).

    Returns warnings (podman 5.4 has none here: a word without ``=`` is silently dropped).
    """
    warnings: list[str] = []
    for key, flag in pairs:
        cmd.add_keys(flag, unit.lookup_all_key_val(group, key))
    return warnings


def handle_podman_args(unit: UnitFile, group: str, cmd: PodmanCommand) -> None:
    cmd.add(*unit.lookup_all_args(group, "PodmanArgs"))


def handle_publish_ports(unit: UnitFile, group: str, cmd: PodmanCommand) -> None:
    for port in unit.lookup_all(group, "PublishPort"):
        cmd.add("--publish", port)


def _userns_opts(kind: str, opts: list[str]) -> str:
    return kind + (":" + ",".join(opts) if opts else "")


def handle_user_mappings(unit: UnitFile, group: str, cmd: PodmanCommand, support_manual: bool) -> None:
    """``UserNS=``, ``UIDMap=``, ``GIDMap=``, ``SubUIDMap=``, ``SubGIDMap=``, or the old ``Remap*=`` keys."""
    defined = False
    userns = unit.lookup(group, "UserNS")
    if userns:
        cmd.add("--userns", userns)
        defined = True
    uid_maps = unit.lookup_all_strv(group, "UIDMap")
    defined = defined or bool(uid_maps)
    for m in uid_maps:
        cmd.add("--uidmap", m)
    gid_maps = unit.lookup_all_strv(group, "GIDMap")
    defined = defined or bool(gid_maps)
    for m in gid_maps:
        cmd.add("--gidmap", m)
    sub_uid = unit.lookup(group, "SubUIDMap")
    if sub_uid:
        cmd.add("--subuidname", sub_uid)
        defined = True
    sub_gid = unit.lookup(group, "SubGIDMap")
    if sub_gid:
        cmd.add("--subgidname", sub_gid)
        defined = True
    if defined:
        if any(unit.lookup_last(group, k) is not None for k in ("RemapUid", "RemapGid", "RemapUsers")):
            raise QuadletError("deprecated Remap keys are set along with explicit mapping keys")
        return
    _handle_user_remap(unit, group, cmd, support_manual)


def _handle_user_remap(unit: UnitFile, group: str, cmd: PodmanCommand, support_manual: bool) -> None:
    uid_maps = unit.lookup_all_strv(group, "RemapUid")
    gid_maps = unit.lookup_all_strv(group, "RemapGid")
    remap = unit.lookup_last(group, "RemapUsers") or ""
    if remap == "":
        if uid_maps:
            raise QuadletError("UidMap set without RemapUsers")
        if gid_maps:
            raise QuadletError("GidMap set without RemapUsers")
    elif remap == "manual":
        if not support_manual:
            raise QuadletError("RemapUsers=manual is not supported")
        for m in uid_maps:
            cmd.add("--uidmap", m)
        for m in gid_maps:
            cmd.add("--gidmap", m)
    elif remap == "auto":
        opts = [f"uidmapping={m}" for m in uid_maps] + [f"gidmapping={m}" for m in gid_maps]
        size = unit.lookup_uint32(group, "RemapUidSize", 0)
        if size > 0:
            opts.append(f"size={size}")
        cmd.add("--userns", _userns_opts("auto", opts))
    elif remap == "keep-id":
        opts = []
        if uid_maps:
            if len(uid_maps) > 1:
                raise QuadletError("RemapUsers=keep-id supports only a single value for UID mapping")
            opts.append("uid=" + uid_maps[0])
        if gid_maps:
            if len(gid_maps) > 1:
                raise QuadletError("RemapUsers=keep-id supports only a single value for GID mapping")
            opts.append("gid=" + gid_maps[0])
        cmd.add("--userns", _userns_opts("keep-id", opts))
    else:
        raise QuadletError(f"unsupported RemapUsers option '{remap}'")


def add_networks(unit: UnitFile, group: str, service: UnitFile, ctx: QuadletContext, cmd: PodmanCommand) -> None:
    """``Network=`` → ``--network``; ``x.network``/``x.container`` become Requires+After and names."""
    for network in unit.lookup_all(group, "Network"):
        if not network:
            continue
        name, found, options = network.partition(":")
        is_network = name.endswith(".network")
        is_container = name.endswith(".container")
        if is_network or is_container:
            info = ctx.info(name)
            if info is None:
                raise QuadletError(f"requested Quadlet unit {name} was not found")
            if not info.resource_name:
                raise QuadletError(f"cannot get the resource name of {name}")
            service.add(UNIT, "Requires", info.service_file_name)
            service.add(UNIT, "After", info.service_file_name)
            if found:
                if is_container:
                    raise QuadletError("extra options are not supported when joining another container's network")
                network = f"{info.resource_name}:{options}"
            elif is_container:
                network = f"container:{info.resource_name}"
            else:
                network = info.resource_name
        cmd.add("--network", network)


def get_absolute_path(unit: UnitFile, path: str) -> str:
    """A path relative to the Quadlet file's directory (left alone if absolute or ``%``-specifier)."""
    starts_with_specifier = path.startswith("%") and not path.startswith("%%")
    if not starts_with_specifier and not os.path.isabs(path):
        base = os.path.dirname(unit.path) if unit.path else os.getcwd()
        path = os.path.normpath(os.path.join(base, path))
    return path


def handle_storage_source(
    unit: UnitFile, service: UnitFile, source: str, ctx: QuadletContext, check_image: bool
) -> str:
    """A volume/mount source: ``./rel`` made absolute, ``/abs`` → RequiresMountsFor, ``x.volume`` → name."""
    if source.startswith("."):
        source = get_absolute_path(unit, source)
    if source.startswith("/"):
        service.add(UNIT, "RequiresMountsFor", source)
    elif source.endswith(".volume") or (check_image and source.endswith(".image")):
        info = ctx.info(source)
        if info is None:
            raise QuadletError(f"requested Quadlet source {source} was not found")
        service.add(UNIT, "Requires", info.service_file_name)
        service.add(UNIT, "After", info.service_file_name)
        source = info.resource_name
    return source


def add_volumes(unit: UnitFile, service: UnitFile, group: str, ctx: QuadletContext, cmd: PodmanCommand) -> None:
    """``Volume=[SRC:]DEST[:OPTS]`` → ``-v``, resolving Quadlet sources."""
    for volume in unit.lookup_all(group, "Volume"):
        parts = volume.split(":", 2)
        source = ""
        options = ""
        if len(parts) >= 2:
            source, dest = parts[0], parts[1]
        else:
            dest = parts[0]
        if len(parts) >= 3:
            options = ":" + parts[2]
        if source:
            source = handle_storage_source(unit, service, source, ctx, False)
        cmd.add("-v")
        cmd.add(dest if not source else f"{source}:{dest}{options}")


def handle_image_source(image: str, service: UnitFile, ctx: QuadletContext) -> str:
    """``x.image``/``x.build`` → the image name, with Requires+After on its service."""
    for suffix in (".build", ".image"):
        if image.endswith(suffix):
            info = ctx.info(image)
            if info is None:
                raise QuadletError(f"requested Quadlet image {image} was not found")
            service.add(UNIT, "Requires", info.service_file_name)
            service.add(UNIT, "After", info.service_file_name)
            image = info.resource_name
    return image


def default_oneshot_service(service: UnitFile, remain_after_exit: bool) -> None:
    """``SyslogIdentifier=%N``, ``Type=oneshot`` and maybe ``RemainAfterExit=yes``, unless set."""
    if service.lookup(SERVICE, "SyslogIdentifier") is None:
        service.set_last(SERVICE, "SyslogIdentifier", "%N")
    if service.lookup(SERVICE, "Type") is None:
        service.set_last(SERVICE, "Type", "oneshot")
    if remain_after_exit and service.lookup(SERVICE, "RemainAfterExit") is None:
        service.set_last(SERVICE, "RemainAfterExit", "yes")
