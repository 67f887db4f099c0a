"""The ``[Container]`` keys of podman 5.4's Quadlet and the podman options they become.

Pure data, no side effects. :mod:`units.quadlet.container` walks these tables in the order
podman's ``ConvertContainer`` does. Podman keeps the "simple" keys (one key → one option) in Go
maps, whose iteration order is random, so the real generator writes those options in a different
order from one run to the next; Fusion writes them in the order of these tables (podman's
source order), which is deterministic and one of the orders the real generator produces.
"""

from __future__ import annotations

CONTAINER_GROUP = "Container"
X_CONTAINER_GROUP = "X-Container"
QUADLET_GROUP = "Quadlet"
X_QUADLET_GROUP = "X-Quadlet"
SERVICE_GROUP = "Service"
UNIT_GROUP = "Unit"

AUTO_UPDATE_LABEL = "io.containers.autoupdate"

#: Every key podman 5.4.2 accepts in ``[Container]``; any other key is an error.
SUPPORTED_KEYS: frozenset[str] = frozenset(
    {
        "AddCapability",
        "AddDevice",
        "AddHost",
        "Annotation",
        "AutoUpdate",
        "CgroupsMode",
        "ContainerName",
        "ContainersConfModule",
        "DNS",
        "DNSOption",
        "DNSSearch",
        "DropCapability",
        "Environment",
        "EnvironmentFile",
        "EnvironmentHost",
        "Entrypoint",
        "Exec",
        "ExposeHostPort",
        "GIDMap",
        "GlobalArgs",
        "Group",
        "GroupAdd",
        "HealthCmd",
        "HealthInterval",
        "HealthOnFailure",
        "HealthLogDestination",
        "HealthMaxLogCount",
        "HealthMaxLogSize",
        "HealthRetries",
        "HealthStartPeriod",
        "HealthStartupCmd",
        "HealthStartupInterval",
        "HealthStartupRetries",
        "HealthStartupSuccess",
        "HealthStartupTimeout",
        "HealthTimeout",
        "HostName",
        "IP6",
        "IP",
        "Image",
        "Label",
        "LogDriver",
        "LogOpt",
        "Mask",
        "Mount",
        "Network",
        "NetworkAlias",
        "NoNewPrivileges",
        "Notify",
        "PidsLimit",
        "Pod",
        "PodmanArgs",
        "PublishPort",
        "Pull",
        "ReadOnly",
        "ReadOnlyTmpfs",
        "RemapGid",
        "RemapUid",
        "RemapUidSize",
        "RemapUsers",
        "Rootfs",
        "RunInit",
        "SeccompProfile",
        "Secret",
        "SecurityLabelDisable",
        "SecurityLabelFileType",
        "SecurityLabelLevel",
        "SecurityLabelNested",
        "SecurityLabelType",
        "ServiceName",
        "ShmSize",
        "StopSignal",
        "StartWithPod",
        "StopTimeout",
        "SubGIDMap",
        "SubUIDMap",
        "Sysctl",
        "Timezone",
        "Tmpfs",
        "UIDMap",
        "Ulimit",
        "Unmask",
        "User",
        "UserNS",
        "VolatileTmp",
        "Volume",
        "WorkingDir",
    }
)

#: The only key podman accepts in the shared ``[Quadlet]`` section.
SUPPORTED_QUADLET_KEYS: frozenset[str] = frozenset({"DefaultDependencies"})

#: Keys whose last non-empty value becomes ``FLAG VALUE``.
STRING_KEYS: tuple[tuple[str, str], ...] = (
    ("Timezone", "--tz"),
    ("PidsLimit", "--pids-limit"),
    ("ShmSize", "--shm-size"),
    ("Entrypoint", "--entrypoint"),
    ("WorkingDir", "--workdir"),
    ("IP", "--ip"),
    ("IP6", "--ip6"),
    ("HostName", "--hostname"),
    ("StopSignal", "--stop-signal"),
    ("StopTimeout", "--stop-timeout"),
    ("Pull", "--pull"),
)

#: Keys of which every value becomes ``FLAG VALUE``.
ALL_STRINGS_KEYS: tuple[tuple[str, str], ...] = (
    ("NetworkAlias", "--network-alias"),
    ("Ulimit", "--ulimit"),
    ("DNS", "--dns"),
    ("DNSOption", "--dns-option"),
    ("DNSSearch", "--dns-search"),
    ("GroupAdd", "--group-add"),
    ("AddHost", "--add-host"),
    ("Tmpfs", "--tmpfs"),
)

#: Boolean keys: ``FLAG`` when true, ``FLAG=false`` when false, nothing when absent.
BOOL_KEYS: tuple[tuple[str, str], ...] = (
    ("RunInit", "--init"),
    ("EnvironmentHost", "--env-host"),
    ("ReadOnlyTmpfs", "--read-only-tmpfs"),
)

#: Health-check keys and the ``--health-*`` option each becomes, in podman's order.
HEALTH_KEYS: tuple[tuple[str, str], ...] = (
    ("HealthCmd", "cmd"),
    ("HealthInterval", "interval"),
    ("HealthOnFailure", "on-failure"),
    ("HealthLogDestination", "log-destination"),
    ("HealthMaxLogCount", "max-log-count"),
    ("HealthMaxLogSize", "max-log-size"),
    ("HealthRetries", "retries"),
    ("HealthStartPeriod", "start-period"),
    ("HealthTimeout", "timeout"),
    ("HealthStartupCmd", "startup-cmd"),
    ("HealthStartupInterval", "startup-interval"),
    ("HealthStartupRetries", "startup-retries"),
    ("HealthStartupSuccess", "startup-success"),
    ("HealthStartupTimeout", "startup-timeout"),
)

#: Options that only ever come from the three tables above (used to compare outputs whose
#: map-driven part podman writes in random order).
MAP_DRIVEN_FLAGS: frozenset[str] = frozenset(
    flag for table in (STRING_KEYS, ALL_STRINGS_KEYS, BOOL_KEYS) for _key, flag in table
)
VALUELESS_FLAGS: frozenset[str] = frozenset(flag for _key, flag in BOOL_KEYS)

#: ``Mount=`` types whose ``source=`` Quadlet resolves (relative paths, ``.volume``/``.image``).
MOUNT_TYPES_WITH_SOURCE: frozenset[str] = frozenset({"volume", "bind", "glob", "image"})

MOUNT_FORMAT_ERROR = (
    "incorrect mount format: should be --mount "
    "type=<bind|glob|tmpfs|volume>,[src=<host-dir|volume-name>,]target=<ctr-dir>[,options]"
)
