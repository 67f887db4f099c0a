"""Quadlet files → the app model (units.from_quadlet): the example set, each key's mapping,
``unsupported: <Key> (file:line)`` for what Fusion cannot represent, and a round trip through
the podman renderer's own Quadlet files."""

from __future__ import annotations

from pathlib import Path

import pytest

from specs.errors import SpecError, SpecErrors
from units.from_quadlet import quadlet_to_app
from units.render import render_app
from units.sources import load_any, load_any_with_warnings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(files: dict[str, str]) -> tuple[object, list[str]]:
    return quadlet_to_app({f"/q/{k}": v for k, v in files.items()}, app_name="q")


def errors_of(files: dict[str, str]) -> list[str]:
    with pytest.raises((SpecError, SpecErrors)) as exc:
        load(files)
    e = exc.value
    return [str(x) for x in e.errors] if isinstance(e, SpecErrors) else [str(e)]


def test_example_set() -> None:
    app, warnings = load_any_with_warnings([EXAMPLES / "quadlet"])
    assert app.name == "quadlet"
    assert sorted(app.services) == ["db", "exporter", "shipper", "web"]
    web, db = app.services["web"], app.services["db"]
    assert web.depends_on["db"].condition == "service_healthy" and web.depends_on["db"].required
    assert web.command == ["notes-web", "--listen", "0.0.0.0:8080"]
    assert web.environment == {"DB_HOST": "db", "DB_NAME": "notes", "NOTES_TITLE": "Team notes"}
    assert [(p.published, p.target) for p in web.ports] == [(8080, 8080)]
    assert web.user == "1000:1000" and web.read_only and web.cap_drop == ["ALL"]
    assert web.deploy.resources.limits.memory == 256 * 1024**2 and web.deploy.resources.limits.cpus == 0.5
    tmp = [m for m in web.volumes if m.type == "tmpfs"][0]
    assert (tmp.target, tmp.tmpfs_size, tmp.tmpfs_mode) == ("/tmp", 64 * 1024**2, 0o1777)
    assert db.healthcheck is not None and db.healthcheck.test == ["CMD-SHELL", "pg_isready -U notes -d notes"]
    assert db.stop_grace_period == 30 and db.stop_signal == "SIGINT" and db.restart == "on-failure"
    assert app.volumes["db-data"].name == "notes-db-data"
    assert app.networks["notes"].name == "notes"
    # the pod: a network for its members, its port on the member that exposes it
    assert app.networks["metrics"].name == "notes-metrics"
    assert [(p.published, p.target) for p in app.services["exporter"].ports] == [(9100, 9100)]
    assert set(app.services["shipper"].networks) == {"metrics", "notes"}
    assert any("share a network" in w for w in warnings)


@pytest.mark.parametrize(
    ("files", "key", "line"),
    [
        ({"a.container": "[Container]\nImage=x\nPodmanArgs=--privileged\n"}, "PodmanArgs", 3),
        ({"a.container": "[Container]\nImage=x\n\n[Service]\nExecStartPre=/bin/true\n"}, "ExecStartPre", 5),
        ({"a.container": "[Unit]\nBefore=x.service\n[Container]\nImage=x\n"}, "Before", 2),
        ({"a.container": "[Container]\nImage=x\n[X-Mine]\nA=b\n"}, "[X-Mine]", 3),
        ({"a.volume": "[Volume]\nCopy=false\n"}, "Copy", 2),
        ({"a.network": "[Network]\nSubnet=10.0.0.0/24\n"}, "Subnet", 2),
        ({"a.pod": "[Pod]\nShmSize=1g\n"}, "ShmSize", 2),
        ({"a.container": "[Container]\nImage=x\nNetwork=host\n"}, "Network", 3),
    ],
)
def test_unsupported_keys_name_file_and_line(files: dict[str, str], key: str, line: int) -> None:
    name = next(iter(files))
    errs = errors_of(files)
    assert any(f"unsupported: {key} (/q/{name}:{line})" in e and e.startswith(f"/q/{name}:{line}:") for e in errs), errs


def test_other_errors() -> None:
    assert any("Requires=other.service" in e for e in errors_of({"a.container": "[Unit]\nRequires=other.service\n[Container]\nImage=x\n"}))
    assert any("no Image" in e for e in errors_of({"a.container": "[Container]\nExec=x\n"}))
    assert any("not a key-value pair" in e and "/q/a.container:2" in e for e in errors_of({"a.container": "[Container]\nImage\n"}))
    assert any("bad duration" in e for e in errors_of({"a.container": "[Container]\nImage=x\nHealthCmd=true\nHealthInterval=soon\n"}))
    assert any("ranges" in e for e in errors_of({"a.container": "[Container]\nImage=x\nPublishPort=80-81:80-81\n"}))
    assert any("ExposeHostPort=80" in e for e in errors_of({
        "p.pod": "[Pod]\nPublishPort=8080:80\n",
        "a.container": "[Container]\nImage=x\nPod=p.pod\n",
        "b.container": "[Container]\nImage=x\nPod=p.pod\n",
    }))


def test_dependency_kinds() -> None:
    app, _ = load(
        {
            "init.container": "[Container]\nImage=i\n[Service]\nType=oneshot\nRemainAfterExit=yes\n",
            "db.container": "[Container]\nImage=d\n",
            "cache.container": "[Container]\nImage=c\n",
            "web.container": "[Unit]\nRequires=init.service\nAfter=init.service\nBindsTo=db.service\nAfter=db.service\n"
            "Wants=cache.service\nAfter=cache.service\nAfter=network-online.target\n[Container]\nImage=w\n",
        }
    )
    deps = app.services["web"].depends_on  # type: ignore[attr-defined]
    assert deps["init"].condition == "service_completed_successfully" and deps["init"].required
    assert deps["db"].restart and deps["db"].condition == "service_started"
    assert not deps["cache"].required


def test_health_forms_and_mounts() -> None:
    app, _ = load(
        {
            "a.container": "[Container]\nImage=x\nHealthCmd=[\"curl\",\"-f\",\"http://x\"]\n"
            "Volume=/srv/a:/a:ro,Z\nVolume=named:/n\nVolume=/anon\nNetwork=existing\nNetworkAlias=api\n"
            "Entrypoint=[\"/bin/sh\",\"-c\"]\nStopTimeout=20\nAddCapability=CAP_NET_ADMIN\n",
            "b.container": "[Container]\nImage=x\nHealthCmd=none\nEntrypoint=/init\nVolume=./rel:/r\n",
        }
    )
    a = app.services["a"]  # type: ignore[attr-defined]
    assert a.healthcheck.test == ["CMD", "curl", "-f", "http://x"]
    bind, named, anon = a.volumes
    assert (bind.type, bind.source, bind.read_only, bind.selinux) == ("bind", "/srv/a", True, "Z")
    assert (named.type, named.source) == ("volume", "named") and app.volumes["named"].name == "named"  # type: ignore[attr-defined]
    assert (anon.type, anon.source) == ("volume", None)
    assert app.networks["existing"].external and a.networks["existing"].aliases == ["api"]  # type: ignore[attr-defined]
    assert a.entrypoint == ["/bin/sh", "-c"] and a.stop_grace_period == 20 and a.cap_add == ["NET_ADMIN"]
    b = app.services["b"]  # type: ignore[attr-defined]
    assert b.healthcheck.disable and b.entrypoint == ["/init"] and b.volumes[0].source == "/q/rel"


@pytest.mark.parametrize("example", ["guestbook.yaml", "three-tier.yaml", "geard.json"])
def test_round_trip_through_rendered_quadlet_files(example: str) -> None:
    """The podman engine's own .container files read back give the same services."""
    app = load_any([EXAMPLES / example], env={})
    result = render_app(app, replicas={name: [1] for name in app.services})
    back, warnings = quadlet_to_app({f"/r/{k}": v for k, v in result.quadlet.items()}, app_name=app.name)
    assert any("ContainerName" in w for w in warnings)
    for name, svc in app.services.items():
        got = back.services[f"{app.name}-{name}-1"]
        assert got.image == svc.image
        assert got.command == svc.command and got.entrypoint == svc.entrypoint
        assert got.environment == svc.environment
        assert got.ports == svc.ports
        assert (got.user, got.working_dir, got.read_only, got.cap_add, got.cap_drop) == (
            svc.user, svc.working_dir, svc.read_only, svc.cap_add, svc.cap_drop)
        assert got.stop_signal == svc.stop_signal and got.stop_grace_period == svc.stop_grace_period
        assert {k: v for k, v in got.labels.items() if not k.startswith("fusion.")} == svc.labels
        if svc.healthcheck is not None and svc.healthcheck.test is not None:
            assert got.healthcheck is not None
            assert (got.healthcheck.interval, got.healthcheck.timeout, got.healthcheck.start_period) == (
                svc.healthcheck.interval, svc.healthcheck.timeout, svc.healthcheck.start_period)
            assert got.healthcheck.test[0] in ("CMD", "CMD-SHELL")
        assert got.deploy.resources.limits == svc.deploy.resources.limits
        for dep, d in svc.depends_on.items():
            back_dep = got.depends_on[f"{app.name}-{dep}-1"]
            assert (back_dep.condition, back_dep.restart, back_dep.required) == (d.condition, d.restart, d.required)


def test_specifiers_and_variables(tmp_path: Path) -> None:
    app, _ = load({"a.container": "[Container]\nImage=x\nEnvironment=A=100%% B=$$x C=$5\nExec=echo %%n\n"})
    svc = app.services["a"]  # type: ignore[attr-defined]
    assert svc.environment == {"A": "100%", "B": "$x", "C": "$5"} and svc.command == ["echo", "%n"]
    errs = errors_of({"a.container": "[Container]\nImage=x\nEnvironment=A=%h B=${X}\n"})
    assert any("unsupported: specifier %h (/q/a.container:3)" in e for e in errs)
    assert any("unsupported: systemd variable ${X}" in e for e in errs)


def test_drop_in_directories_are_refused(tmp_path: Path) -> None:
    (tmp_path / "web.container").write_text("[Container]\nImage=x\n")
    (tmp_path / "web.container.d").mkdir()
    with pytest.raises(SpecError, match="drop-in"):
        load_any([tmp_path])
