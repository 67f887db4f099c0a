"""``units.quadlet.container``: golden cases of podman 5.4.2's ``ConvertContainer``, checked purely.

The expected texts were produced by podman 5.4.2's real generator (``real-quadlet -dryrun``) on the
same inputs; ``tests/integration/test_quadlet_conformance.py`` keeps checking the converter against
that generator on many more inputs.
"""

from __future__ import annotations

import pytest

from units.quadlet.common import QuadletContext, UnitInfo
from units.quadlet.container import (
    ContainerError,
    container_name,
    container_resource_name,
    convert_container,
)
from units.unitfile import UnitFile

DIR = "/etc/containers/systemd"


def _ctx(*, user: bool = False, **extra: UnitInfo) -> QuadletContext:
    ctx = QuadletContext(is_user=user)
    ctx.units.update(extra)
    return ctx


def convert(
    text: str, name: str = "web.container", ctx: QuadletContext | None = None
) -> tuple[str, list[str]]:
    unit = UnitFile.parse(text, filename=name, path=f"{DIR}/{name}")
    ctx = ctx or _ctx()
    if name not in ctx.units:
        ctx.units[name] = UnitInfo(
            service_name=name.rsplit(".", 1)[0], resource_name=container_resource_name(unit)
        )
    service, warnings = convert_container(unit, ctx)
    return service.render(), warnings


def exec_start(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("ExecStart="))[len("ExecStart=") :]


def error_of(text: str, name: str = "web.container", ctx: QuadletContext | None = None) -> str:
    with pytest.raises(ContainerError) as info:
        convert(text, name, ctx)
    return info.value.what


BASE = "/usr/bin/podman run --name systemd-%N --cidfile=%t/%N.cid --replace --rm --cgroups=split"


def test_minimal_container_is_what_podman_writes() -> None:
    text, warnings = convert("[Container]\nImage=quay.io/app\n")
    assert warnings == []
    assert text == (
        "[X-Container]\n"
        "Image=quay.io/app\n"
        "\n"
        "[Unit]\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n"
        f"SourcePath={DIR}/web.container\n"
        "RequiresMountsFor=%t/containers\n"
        "\n"
        "[Service]\n"
        "Environment=PODMAN_SYSTEMD_UNIT=%n\n"
        "KillMode=mixed\n"
        "ExecStop=/usr/bin/podman rm -v -f -i --cidfile=%t/%N.cid\n"
        "ExecStopPost=-/usr/bin/podman rm -v -f -i --cidfile=%t/%N.cid\n"
        "Delegate=yes\n"
        "Type=notify\n"
        "NotifyAccess=all\n"
        "SyslogIdentifier=%N\n"
        f"ExecStart={BASE} --sdnotify=conmon -d quay.io/app\n"
    )


WEB = """\
# A web server
[Unit]
Description=Web

[Container]
Image=docker.io/library/nginx:1.27
ContainerName=web
PublishPort=8080:80
Environment=B=2 A=1 "C=with space"
Volume=data.volume:/usr/share/nginx/html:ro
Volume=/srv/conf:/etc/nginx/conf.d:Z
Network=front.network
Pod=site.pod
Label=app=web
Exec=nginx -g "daemon off;"
HealthCmd=curl -f http://localhost/
Notify=healthy

[Service]
Restart=always

[Install]
WantedBy=multi-user.target
"""

WEB_EXPECTED = f"""\
# A web server
[Unit]
Wants=network-online.target
After=network-online.target
Description=Web
SourcePath={DIR}/web.container
RequiresMountsFor=%t/containers
Requires=front-network.service
After=front-network.service
Requires=data-volume.service
After=data-volume.service
RequiresMountsFor=/srv/conf
BindsTo=site-pod.service
After=site-pod.service

[X-Container]
Image=docker.io/library/nginx:1.27
ContainerName=web
PublishPort=8080:80
Environment=B=2 A=1 "C=with space"
Volume=data.volume:/usr/share/nginx/html:ro
Volume=/srv/conf:/etc/nginx/conf.d:Z
Network=front.network
Pod=site.pod
Label=app=web
Exec=nginx -g "daemon off;"
HealthCmd=curl -f http://localhost/
Notify=healthy

[Service]
Restart=always
Environment=PODMAN_SYSTEMD_UNIT=%n
KillMode=mixed
ExecStop=/usr/bin/podman rm -v -f -i --cidfile=%t/%N.cid
ExecStopPost=-/usr/bin/podman rm -v -f -i --cidfile=%t/%N.cid
Delegate=yes
Type=notify
NotifyAccess=all
SyslogIdentifier=%N
ExecStart=/usr/bin/podman run --name web --cidfile=%t/%N.cid --replace --rm --cgroups=split \
--network systemd-front --sdnotify=healthy -d -v systemd-data:/usr/share/nginx/html:ro \
-v /srv/conf:/etc/nginx/conf.d:Z --publish 8080:80 --env A=1 --env B=2 --env "C=with space" \
--label app=web --health-cmd "curl -f http://localhost/" --pod-id-file %t/site-pod.pod-id \
docker.io/library/nginx:1.27 nginx -g "daemon off;"

[Install]
WantedBy=multi-user.target
"""


def _web_ctx() -> QuadletContext:
    return _ctx(
        **{
            "data.volume": UnitInfo("data-volume", "systemd-data"),
            "front.network": UnitInfo("front-network", "systemd-front"),
            "site.pod": UnitInfo("site-pod", "systemd-site"),
        }
    )


def test_web_with_volume_network_and_pod_is_what_podman_writes() -> None:
    ctx = _web_ctx()
    text, _ = convert(WEB, ctx=ctx)
    assert text == WEB_EXPECTED
    assert ctx.units["site.pod"].containers_to_start == ["web.service"]


def test_start_with_pod_no_is_not_started_by_the_pod() -> None:
    ctx = _web_ctx()
    convert("[Container]\nImage=quay.io/a\nPod=site.pod\nStartWithPod=no\n", ctx=ctx)
    assert ctx.units["site.pod"].containers_to_start == []


def test_user_units_wait_for_podmans_user_network_service() -> None:
    text, _ = convert("[Container]\nImage=quay.io/a\n", ctx=_ctx(user=True))
    assert (
        "Wants=podman-user-wait-network-online.service\nAfter=podman-user-wait-network-online.service\n"
        in text
    )


def test_default_dependencies_can_be_turned_off() -> None:
    text, _ = convert("[Quadlet]\nDefaultDependencies=no\n[Container]\nImage=quay.io/a\n")
    assert "network-online" not in text
    assert "[X-Quadlet]\nDefaultDependencies=no\n" in text


# The order podman 5.4.2 uses, with the map-driven options in the order of container_keys.
ALL_KEYS_EXEC_START = (
    "/usr/bin/podman --module=/etc/containers/extra.conf --log-level=info run --name all-keys "
    "--cidfile=%t/%N.cid --replace --rm --log-driver journald --log-opt tag=allkeys --cgroups enabled "
    "--tz Europe/Paris --pids-limit 256 --shm-size 64m --entrypoint /bin/tini --workdir /app "
    "--ip 10.88.0.10 --ip6 fd00::10 --hostname allkeys --stop-signal SIGINT --stop-timeout 30 "
    "--pull newer --network-alias web --ulimit nofile=1024:2048 --dns 192.0.2.53 --dns-option ndots:2 "
    "--dns-search example.org --group-add wheel --add-host db.internal:10.1.2.3 "
    "--tmpfs /var/tmp:rw,size=16m --init --env-host=false --read-only-tmpfs --network host "
    "--sdnotify=container -d --security-opt=no-new-privileges --security-opt label=nested "
    "--security-opt label=type:app_t --security-opt label=filetype:app_file_t "
    "--security-opt label=level:s0:c1,c2 --device /dev/null:/dev/xnull:rw "
    "--security-opt seccomp=/etc/seccomp.json --cap-drop all --cap-add cap_net_admin "
    "--sysctl net.ipv4.ip_forward=1 --read-only --user app:app --userns auto "
    "--uidmap 0:100000:65536 --gidmap 0:100000:65536 --subuidname appuser --subgidname appgroup "
    "-v /srv/data:/data:Z --label io.containers.autoupdate=registry --expose 9000 "
    '--publish 127.0.0.1:8080:8080 --env A=1 --env "B=two words" --label app=all --label tier=web '
    '--annotation "com.example.note=hello world" --security-opt mask=/proc/kcore '
    "--security-opt unmask=/proc/acpi --env-file /etc/app.env --secret token,type=env,target=TOKEN "
    '--mount type=tmpfs,destination=/run/scratch --health-cmd "/bin/check --fast" '
    "--health-interval 30s --health-on-failure restart --health-log-destination /var/log/health "
    "--health-max-log-count 5 --health-max-log-size 500 --health-retries 3 --health-start-period 10s "
    "--health-timeout 3s --health-startup-cmd /bin/ready --health-startup-interval 2s "
    "--health-startup-retries 20 --health-startup-success 1 --health-startup-timeout 5s "
    "--memory=512m registry.example.org/app:1.2 serve --port 8080"
)


def test_every_key_maps_to_podmans_arguments_in_podmans_order() -> None:
    from pathlib import Path

    corpus = Path(__file__).resolve().parents[1] / "conformance" / "corpus" / "all-keys.container"
    text, _ = convert(corpus.read_text(), name="all-keys.container")
    assert exec_start(text) == ALL_KEYS_EXEC_START


def test_values_are_read_as_podman_54_reads_them() -> None:
    text, _ = convert(
        "[Container]\n"
        'Image="quay.io/quoted"\n'
        'HostName="a" "b"\n'
        'Timezone="x\n'
        "Tmpfs=/a\nTmpfs=\nTmpfs=/b\n"
        'Label=foo "bar=baz qux" lone\n'
        "Environment=X=1 X=2 Y\n"
        "LogOpt=a\\sb\n"
        "Secret=a\\sb\n"
        "ExposeHostPort=a80\n"
    )
    assert exec_start(text) == (
        f'{BASE[: -len(" --cgroups=split")]} --log-opt "a\\\\sb" --cgroups=split --tz x '
        '--hostname "a\\" \\"b" --tmpfs /b --sdnotify=conmon -d --expose a80 --env X=2 '
        '--label "bar=baz qux" --secret "a b" quay.io/quoted'
    )


def test_specifiers_and_variables_are_left_for_systemd() -> None:
    text, _ = convert("[Container]\nImage=quay.io/a\nPublishPort=${PORT}:80\nVolume=%h/data:/data\n")
    assert "--publish ${PORT}:80" in exec_start(text)
    assert "-v %h/data:/data" in exec_start(text)
    assert "RequiresMountsFor=%h" not in text


def test_oneshot_service_gets_no_notify() -> None:
    text, _ = convert("[Container]\nImage=quay.io/a\n[Service]\nType=oneshot\nSyslogIdentifier=me\n")
    assert exec_start(text) == f"{BASE} quay.io/a"
    assert "Type=oneshot\n" in text and "NotifyAccess" not in text
    assert "SyslogIdentifier=me\n" in text and "SyslogIdentifier=%N" not in text


def test_template_container_is_named_after_prefix_and_instance() -> None:
    unit = UnitFile.parse("[Container]\nImage=quay.io/a\n", filename="web@.container")
    assert container_name(unit) == "systemd-%p_%i"
    assert container_resource_name(unit) == ""
    text, _ = convert("[Container]\nImage=quay.io/a\n", name="web@.container")
    assert "--name systemd-%p_%i" in exec_start(text)


def test_relative_paths_are_relative_to_the_quadlet_file() -> None:
    text, _ = convert(
        "[Container]\nImage=quay.io/a\nVolume=./data:/data\nEnvironmentFile=app.env\n"
        'Mount="type=bind,src=../x y,dst=/x"\n'
    )
    assert f"RequiresMountsFor={DIR}/data\n" in text
    assert "RequiresMountsFor=/etc/containers/x y\n" in text
    assert f"-v {DIR}/data:/data" in exec_start(text)
    assert f"--env-file {DIR}/app.env" in exec_start(text)
    assert '--mount "type=bind,source=/etc/containers/x y,dst=/x"' in exec_start(text)


def test_mount_sources_resolve_quadlet_units() -> None:
    ctx = _ctx(
        **{"data.volume": UnitInfo("data-volume", "data"), "os.image": UnitInfo("os-image", "quay.io/os")}
    )
    text, _ = convert(
        "[Container]\nImage=quay.io/a\nMount=type=volume,source=data.volume,dst=/v\n"
        "Mount=type=image,src=os.image,dst=/os\nMount=type=tmpfs,dst=/t,source=ignored.volume\n",
        ctx=ctx,
    )
    assert (
        "--mount type=volume,source=data,dst=/v --mount type=image,source=quay.io/os,dst=/os"
        in exec_start(text)
    )
    assert "--mount type=tmpfs,dst=/t,source=ignored.volume" in exec_start(text)
    assert "Requires=data-volume.service\nAfter=data-volume.service\nRequires=os-image.service\n" in text


def test_image_from_a_build_unit() -> None:
    ctx = _ctx(**{"app.build": UnitInfo("app-build", "localhost/app:dev")})
    text, _ = convert("[Container]\nImage=app.build\n", ctx=ctx)
    assert exec_start(text).endswith(" localhost/app:dev")
    assert "Requires=app-build.service\nAfter=app-build.service\n" in text


def test_joining_another_containers_network() -> None:
    ctx = _ctx(**{"db.container": UnitInfo("db", "systemd-db")})
    text, _ = convert("[Container]\nImage=quay.io/a\nNetwork=db.container\n", ctx=ctx)
    assert "--network container:systemd-db" in exec_start(text)
    assert "Requires=db.service\nAfter=db.service\n" in text


def test_missing_optional_devices_are_left_out() -> None:
    ctx = _ctx()
    ctx.path_exists = lambda p: p == "/dev/present"  # type: ignore[attr-defined]
    text, _ = convert(
        "[Container]\nImage=quay.io/a\nAddDevice=-/dev/absent -/dev/present:/dev/x /dev/y\n", ctx=ctx
    )
    assert "--device /dev/present:/dev/x --device /dev/y" in exec_start(text)
    assert "absent" not in exec_start(text)


def test_remap_users_forms() -> None:
    auto, _ = convert(
        "[Container]\nImage=quay.io/a\nRemapUsers=auto\nRemapUid=1\nRemapGid=2\nRemapUidSize=3\n"
    )
    assert "--userns auto:uidmapping=1,gidmapping=2,size=3" in exec_start(auto)
    keep, _ = convert("[Container]\nImage=quay.io/a\nRemapUsers=keep-id\nRemapUid=1\n")
    assert "--userns keep-id:uid=1" in exec_start(keep)
    manual, _ = convert("[Container]\nImage=quay.io/a\nRemapUsers=manual\nRemapUid=1\nRemapGid=2\n")
    assert "--uidmap 1 --gidmap 2" in exec_start(manual)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("Image=quay.io/a\nBogus=1", f"unsupported key 'Bogus' in group 'Container' in {DIR}/web.container"),
        ("HostName=x", "no Image or Rootfs key specified"),
        ("Image=quay.io/a\nRootfs=/r", "the Image And Rootfs keys conflict can not be specified together"),
        ("Image=quay.io/a\nGroup=1", "invalid Group set without User"),
        ("Image=quay.io/a\nExposeHostPort=http", "invalid port format 'http'"),
        (
            "Image=quay.io/a\nUserNS=auto\nRemapUsers=auto",
            "deprecated Remap keys are set along with explicit mapping keys",
        ),
        ("Image=quay.io/a\nRemapUid=1", "UidMap set without RemapUsers"),
        ("Image=quay.io/a\nRemapUsers=odd", "unsupported RemapUsers option 'odd'"),
        ("Image=quay.io/a\nNetwork=nope.network", "requested Quadlet unit nope.network was not found"),
        ("Image=quay.io/a\nVolume=nope.volume:/x", "requested Quadlet source nope.volume was not found"),
        ("Image=nope.image", "requested Quadlet image nope.image was not found"),
        ("Image=quay.io/a\nPod=mypod", "pod mypod is not Quadlet based"),
        ("Image=quay.io/a\nPod=nope.pod", "quadlet pod unit nope.pod does not exist"),
        ("Image=quay.io/a\nMount=type=bind,src,dst=/b", "source parameter does not include a value"),
        ("Image=quay.io/a\nMount=type=bind,dst=/b", "the bind mount has no source parameter"),
        (
            "Image=quay.io/a\nMount=src=/a,dst=/b",
            "incorrect mount format: should be --mount "
            "type=<bind|glob|tmpfs|volume>,[src=<host-dir|volume-name>,]target=<ctr-dir>[,options]",
        ),
        ("Image=quay.io/a\n[Service]\nKillMode=process", "invalid KillMode 'process'"),
        ("Image=quay.io/a\n[Service]\nType=simple", "invalid service Type 'simple'"),
        (
            "Image=quay.io/a\n[Quadlet]\nFoo=1",
            f"unsupported key 'Foo' in group 'Quadlet' in {DIR}/web.container",
        ),
    ],
)
def test_podmans_errors(body: str, message: str) -> None:
    assert error_of("[Container]\n" + body + "\n") == message


def test_errors_name_the_file_and_key() -> None:
    with pytest.raises(ContainerError) as info:
        convert("[Container]\nImage=quay.io/a\nGroup=1\n")
    assert str(info.value) == f"{DIR}/web.container: [Container] Group: invalid Group set without User"
    assert info.value.exit_code == 2


def test_bad_escapes_are_dropped_as_podman_does() -> None:
    text, _ = convert("[Container]\nImage=quay.io/a\nExec=foo \\q\nLabel=a=\\q\nPodmanArgs=--x \\q\n")
    assert exec_start(text) == f"{BASE} --sdnotify=conmon -d quay.io/a"
