"""``.network`` → ``NAME-network.service`` that runs ``podman network create``. Pure."""

from __future__ import annotations

from units.quadlet.common import (
    SERVICE,
    QuadletContext,
    QuadletError,
    add_all_strings,
    add_booleans,
    add_key_vals,
    add_strings,
    base_podman_command,
    default_oneshot_service,
    handle_podman_args,
    init_service_unit,
    remove_extension,
)
from units.unitfile import UnitFile

GROUP = "Network"


def network_name(unit: UnitFile) -> str:
    """The podman network name: ``NetworkName=`` or ``systemd-NAME``."""
    return unit.lookup(GROUP, "NetworkName") or remove_extension(unit.filename, "systemd-")


def convert_network(unit: UnitFile, ctx: QuadletContext) -> tuple[UnitFile, list[str]]:
    """podman's ``ConvertNetwork``; records the network name in ``ctx.units[unit.filename]``."""
    service, info = init_service_unit(unit, ctx, GROUP)
    name = network_name(unit)
    cmd = base_podman_command(unit, GROUP, ctx)
    cmd.add("network", "create", "--ignore")
    add_booleans(unit, GROUP, [("DisableDNS", "--disable-dns"), ("Internal", "--internal"), ("IPv6", "--ipv6")], cmd)
    add_strings(unit, GROUP, [("Driver", "--driver"), ("IPAMDriver", "--ipam-driver")], cmd)
    add_all_strings(unit, GROUP, [("DNS", "--dns")], cmd)

    subnets = unit.lookup_all(GROUP, "Subnet")
    gateways = unit.lookup_all(GROUP, "Gateway")
    ranges = unit.lookup_all(GROUP, "IPRange")
    if subnets:
        if len(gateways) > len(subnets):
            raise QuadletError("cannot set more gateways than subnets")
        if len(ranges) > len(subnets):
            raise QuadletError("cannot set more ranges than subnets")
        for i, subnet in enumerate(subnets):
            cmd.add("--subnet", subnet)
            if i < len(gateways):
                cmd.add("--gateway", gateways[i])
            if i < len(ranges):
                cmd.add("--ip-range", ranges[i])
    elif ranges or gateways:
        raise QuadletError("cannot set gateway or range without subnet")

    warnings = add_key_vals(unit, GROUP, [("Options", "--opt"), ("Label", "--label")], cmd)
    handle_podman_args(unit, GROUP, cmd)
    cmd.add(name)
    service.add_cmdline(SERVICE, "ExecStart", cmd.args, literal=False)
    default_oneshot_service(service, True)
    info.resource_name = name
    return service, warnings
