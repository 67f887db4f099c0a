"""``.pod`` → ``NAME-pod.service`` that creates, starts, stops and removes a podman pod. Pure."""

from __future__ import annotations

from units.quadlet.common import (
    SERVICE,
    UNIT,
    QuadletContext,
    add_all_strings,
    add_networks,
    add_strings,
    add_volumes,
    base_podman_command,
    handle_podman_args,
    handle_publish_ports,
    handle_user_mappings,
    init_service_unit,
    remove_extension,
)
from units.unitfile import UnitFile

GROUP = "Pod"
POD_ID_FILE = "--pod-id-file=%t/%N.pod-id"


def pod_name(unit: UnitFile) -> str:
    """The podman pod name: ``PodName=`` or ``systemd-NAME``."""
    return unit.lookup(GROUP, "PodName") or remove_extension(unit.filename, "systemd-")


def convert_pod(unit: UnitFile, ctx: QuadletContext) -> tuple[UnitFile, list[str]]:
    """podman 5.4's ``ConvertPod``.

    Containers with ``Pod=`` this file (converted before pods) are in
    ``ctx.units[unit.filename].containers_to_start``: the pod ``Wants=`` and starts ``Before=`` them.
    """
    service, info = init_service_unit(unit, ctx, GROUP)
    name = pod_name(unit)
    for container_service in info.containers_to_start:
        service.add(UNIT, "Wants", container_service)
        service.add(UNIT, "Before", container_service)
    if not unit.has_key(SERVICE, "SyslogIdentifier"):
        service.set_last(SERVICE, "SyslogIdentifier", "%N")

    start = base_podman_command(unit, GROUP, ctx)
    start.add("pod", "start", POD_ID_FILE)
    service.add_cmdline(SERVICE, "ExecStart", start.args, literal=False)

    stop = base_podman_command(unit, GROUP, ctx)
    stop.add("pod", "stop", POD_ID_FILE, "--ignore", "--time=10")
    service.add_cmdline(SERVICE, "ExecStop", stop.args, literal=False)

    stop_post = base_podman_command(unit, GROUP, ctx)
    stop_post.add("pod", "rm", POD_ID_FILE, "--ignore", "--force")
    service.add_cmdline(SERVICE, "ExecStopPost", stop_post.args, literal=False)

    pre = base_podman_command(unit, GROUP, ctx)
    pre.add("pod", "create", "--infra-conmon-pidfile=%t/%N.pid", POD_ID_FILE, "--exit-policy=stop", "--replace")
    handle_user_mappings(unit, GROUP, pre, True)
    handle_publish_ports(unit, GROUP, pre)
    add_networks(unit, GROUP, service, ctx, pre)
    add_strings(unit, GROUP, [("IP", "--ip"), ("IP6", "--ip6"), ("ShmSize", "--shm-size")], pre)
    add_all_strings(
        unit,
        GROUP,
        [
            ("NetworkAlias", "--network-alias"),
            ("DNS", "--dns"),
            ("DNSOption", "--dns-option"),
            ("DNSSearch", "--dns-search"),
            ("AddHost", "--add-host"),
        ],
        pre,
    )
    add_volumes(unit, service, GROUP, ctx, pre)
    pre.add("--infra-name", f"{name}-infra", "--name", name)
    handle_podman_args(unit, GROUP, pre)
    service.add_cmdline(SERVICE, "ExecStartPre", pre.args, literal=False)

    for key, value in (
        ("Environment", "PODMAN_SYSTEMD_UNIT=%n"),
        ("Type", "forking"),
        ("Restart", "on-failure"),
        ("PIDFile", "%t/%N.pid"),
    ):
        service.set_last(SERVICE, key, value)
    info.resource_name = name
    return service, []
