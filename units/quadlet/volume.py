"""``.volume`` → ``NAME-volume.service`` that runs ``podman volume create``. Pure."""

from __future__ import annotations

from units.quadlet.common import (
    SERVICE,
    QuadletContext,
    QuadletError,
    add_key_vals,
    base_podman_command,
    default_oneshot_service,
    handle_image_source,
    handle_podman_args,
    init_service_unit,
    remove_extension,
)
from units.unitfile import UnitFile

GROUP = "Volume"


def volume_name(unit: UnitFile) -> str:
    """The podman volume name: ``VolumeName=`` or ``systemd-NAME``."""
    return unit.lookup(GROUP, "VolumeName") or remove_extension(unit.filename, "systemd-")


def convert_volume(unit: UnitFile, ctx: QuadletContext) -> tuple[UnitFile, list[str]]:
    """podman's ``ConvertVolume``; records the volume name in ``ctx.units[unit.filename]``."""
    service, info = init_service_unit(unit, ctx, GROUP)
    name = volume_name(unit)
    cmd = base_podman_command(unit, GROUP, ctx)
    cmd.add("volume", "create", "--ignore")

    driver = unit.lookup(GROUP, "Driver")
    if driver is not None:
        cmd.add("--driver", driver)

    opts = ""
    if driver == "image":
        image = unit.lookup(GROUP, "Image")
        if image is None:
            raise QuadletError("the key Image is mandatory when using the image driver")
        opts = "image=" + handle_image_source(image, service, ctx)
    else:
        o: list[str] = []
        if unit.has_key(GROUP, "User"):
            o.append(f"uid={unit.lookup_uint32(GROUP, 'User', 0)}")
        if unit.has_key(GROUP, "Group"):
            o.append(f"gid={unit.lookup_uint32(GROUP, 'Group', 0)}")
        copy = unit.lookup_bool(GROUP, "Copy")
        if copy is not None:
            cmd.add("--opt", "copy" if copy else "nocopy")
        device = unit.lookup(GROUP, "Device")
        dev_valid = bool(device)
        if device:
            cmd.add("--opt", f"device={device}")
        dev_type = unit.lookup(GROUP, "Type")
        if dev_type:
            if not dev_valid:
                raise QuadletError("key Type can't be used without Device")
            cmd.add("--opt", f"type={dev_type}")
        mount_opts = unit.lookup(GROUP, "Options")
        if mount_opts:
            if not dev_valid:
                raise QuadletError("key Options can't be used without Device")
            o.append(mount_opts)
        opts = "o=" + ",".join(o) if o else ""
    if opts:
        cmd.add("--opt", opts)

    warnings = add_key_vals(unit, GROUP, [("Label", "--label")], cmd)
    handle_podman_args(unit, GROUP, cmd)
    cmd.add(name)
    service.add_cmdline(SERVICE, "ExecStart", cmd.args, literal=False)
    default_oneshot_service(service, True)
    info.resource_name = name
    return service, warnings
