"""Unit rendering (units.render): golden files for every example and both engines, the
depends_on / restart / resource mapping, host options, and value errors.

Regenerate the golden files after an intended change with
``FUSION_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_render.py`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from specs.app import App
from units import systemd
from units.render import HostOptions, RenderError, render_app, render_service
from units.sources import load_any
from units.unitfile import UnitFile

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GOLDEN = Path(__file__).resolve().parent / "golden"
EXAMPLE_PATHS = {
    "guestbook": EXAMPLES / "guestbook.yaml",
    "three-tier": EXAMPLES / "three-tier.yaml",
    "geard": EXAMPLES / "geard.json",
    "quadlet": EXAMPLES / "quadlet",
}
UPDATE = bool(os.environ.get("FUSION_UPDATE_GOLDEN"))


def example(name: str) -> App:
    return load_any([EXAMPLE_PATHS[name]], env={})


def app_of(services: dict[str, object], **extra: object) -> App:
    return App.model_validate({"name": "t", "services": services, **extra})


def unit(text: str) -> UnitFile:
    return UnitFile.parse(text)


@pytest.mark.parametrize("engine", ["podman", "docker"])
@pytest.mark.parametrize("name", sorted(EXAMPLE_PATHS))
def test_golden(name: str, engine: str) -> None:
    result = render_app(example(name), engine=engine)  # type: ignore[arg-type]
    produced = {**result.files, **{f"quadlet/{k}": v for k, v in result.quadlet.items()}}
    if engine == "podman":
        assert result.quadlet, "the podman engine keeps the Quadlet files it converted"
    base = GOLDEN / name / engine
    if UPDATE:
        for old in base.rglob("*"):
            if old.is_file():
                old.unlink()
        for fname, text in produced.items():
            (base / fname).parent.mkdir(parents=True, exist_ok=True)
            (base / fname).write_text(text)
    expected = {str(p.relative_to(base)): p.read_text() for p in base.rglob("*") if p.is_file()}
    assert sorted(produced) == sorted(expected)
    for fname in produced:
        assert produced[fname] == expected[fname], fname


@pytest.mark.parametrize("engine", ["podman", "docker"])
def test_output_is_deterministic(engine: str) -> None:
    app = example("three-tier")
    assert render_app(app, engine=engine) == render_app(app, engine=engine)  # type: ignore[arg-type]


def exec_start(text: str) -> str:
    value = unit(text).lookup_last("Service", "ExecStart")
    assert value is not None
    return value


# -- podman: the Quadlet semantics ----------------------------------------------------------------


def test_podman_unit_has_quadlet_shape() -> None:
    r = render_app(example("guestbook"))
    web = unit(r.files["guestbook-web-1.service"])
    assert web.lookup("Service", "Type") == "notify"
    assert web.lookup("Service", "KillMode") == "mixed"
    assert web.lookup("Service", "Delegate") == "yes"
    assert web.lookup("Service", "SyslogIdentifier") == "%N"
    assert "PODMAN_SYSTEMD_UNIT=%n" in web.lookup_all("Service", "Environment")
    assert web.lookup_all("Unit", "Wants")[0] == "network-online.target"
    assert "%t/containers" in web.lookup_all("Unit", "RequiresMountsFor")
    words = systemd.split_command_line(exec_start(r.files["guestbook-web-1.service"]))
    assert words[:8] == ["/usr/bin/podman", "run", "--name", "guestbook-web-1", "--cidfile=%t/%N.cid", "--replace", "--rm", "--cgroups=split"]
    assert "--sdnotify=conmon" in words and "-d" in words
    assert words[-1] == "localhost:5000/fusion/guestbook-web:1"
    assert web.lookup("Install", "WantedBy") == "multi-user.target"
    assert web.lookup("Service", "ExecStop") == "/usr/bin/podman rm -v -f -i --cidfile=%t/%N.cid"


def test_podman_named_volume_and_network_units() -> None:
    r = render_app(example("guestbook"))
    vol = unit(r.files["guestbook-redis-data-volume.service"])
    assert vol.lookup("Service", "Type") == "oneshot" and vol.lookup("Service", "RemainAfterExit") == "yes"
    assert "guestbook_redis-data" in exec_start(r.files["guestbook-redis-data-volume.service"])
    redis = unit(r.files["guestbook-redis-1.service"])
    assert "guestbook-redis-data-volume.service" in redis.lookup_all("Unit", "Requires")
    assert "guestbook-default-network.service" in redis.lookup_all("Unit", "Requires")
    assert "-v guestbook_redis-data:/data" in exec_start(r.files["guestbook-redis-1.service"])


def test_service_healthy_dependency_uses_notify_healthy() -> None:
    r = render_app(example("guestbook"))
    assert "--sdnotify=healthy" in exec_start(r.files["guestbook-redis-1.service"])
    web = unit(r.files["guestbook-web-1.service"])
    assert web.lookup_all("Unit", "Requires").count("guestbook-redis-1.service") == 1
    assert "guestbook-redis-1.service" in web.lookup_all("Unit", "After")


DEPS = {
    "plain": ({}, "Requires"),
    "restart": ({"restart": True}, "BindsTo"),
    "optional": ({"required": False}, "Wants"),
}


@pytest.mark.parametrize("engine", ["podman", "docker"])
@pytest.mark.parametrize("case", sorted(DEPS))
def test_depends_on_mapping(engine: str, case: str) -> None:
    extra, key = DEPS[case]
    app = app_of({"db": {"image": "db"}, "web": {"image": "web", "depends_on": {"db": extra}}})
    r = render_app(app, engine=engine)  # type: ignore[arg-type]
    web = unit(r.files["t-web-1.service"])
    assert web.lookup_all("Unit", key).count("t-db-1.service") == 1
    assert "t-db-1.service" in web.lookup_all("Unit", "After")
    others = {"Requires", "BindsTo", "Wants"} - {key}
    for other in others:
        assert "t-db-1.service" not in web.lookup_all("Unit", other)
    if case == "optional":
        assert web.lookup_all("Unit", "PartOf") == []


def test_optional_restart_dependency_adds_part_of() -> None:
    app = app_of({"db": {"image": "db"}, "web": {"image": "web", "depends_on": {"db": {"required": False, "restart": True}}}})
    web = unit(render_app(app).files["t-web-1.service"])
    assert web.lookup_all("Unit", "PartOf") == ["t-db-1.service"]


@pytest.mark.parametrize("engine", ["podman", "docker"])
def test_completed_successfully_makes_a_oneshot(engine: str) -> None:
    app = app_of(
        {
            "migrate": {"image": "m", "restart": "always"},
            "web": {"image": "web", "depends_on": {"migrate": {"condition": "service_completed_successfully"}}},
        }
    )
    r = render_app(app, engine=engine)  # type: ignore[arg-type]
    m = unit(r.files["t-migrate-1.service"])
    assert m.lookup("Service", "Type") == "oneshot"
    assert m.lookup("Service", "RemainAfterExit") == "yes"
    assert m.lookup("Service", "Restart") == "on-failure"  # systemd refuses Restart=always for oneshot
    assert any("restarted only on failure" in w for w in r.warnings)
    words = systemd.split_command_line(exec_start(r.files["t-migrate-1.service"]))
    assert "-d" not in words and not any(w.startswith("--sdnotify") for w in words)
    assert "t-migrate-1.service" in unit(r.files["t-web-1.service"]).lookup_all("Unit", "After")


def test_docker_waits_for_health_after_start() -> None:
    r = render_app(example("guestbook"), engine="docker")
    redis = unit(r.files["guestbook-redis-1.service"])
    posts = redis.lookup_all("Service", "ExecStartPost")
    assert len(posts) == 1 and "{{.State.Health.Status}}" in posts[0] and "$$(" in posts[0]
    web = unit(r.files["guestbook-web-1.service"])
    assert web.lookup_all("Service", "ExecStartPost") == []
    assert web.lookup_all("Unit", "Requires")[0] == "docker.service"


def test_docker_unit_shape() -> None:
    r = render_app(example("three-tier"), engine="docker")
    db = unit(r.files["three-tier-db-1.service"])
    assert db.lookup("Service", "ExecStartPre") == "-/usr/bin/docker rm -f three-tier-db-1"
    assert db.lookup("Service", "ExecStop") == "/usr/bin/docker stop -t 60 three-tier-db-1"
    words = systemd.split_command_line(exec_start(r.files["three-tier-db-1.service"]))
    assert words[:5] == ["/usr/bin/docker", "run", "--rm", "--name", "three-tier-db-1"]
    assert words[words.index("--memory") + 1] == str(1024**3)
    assert words[words.index("--health-cmd") + 1] == "pg_isready -U app -d app"
    proxy = unit(r.files["three-tier-proxy-1.service"])
    pwords = systemd.split_command_line(exec_start(r.files["three-tier-proxy-1.service"]))
    assert pwords[pwords.index("--network") + 1] == "three-tier_front"  # not the internal one
    assert any("network connect" in v for v in proxy.lookup_all("Service", "ExecStartPost"))


RESTARTS = [
    ({"restart": "no"}, {"Restart": "no"}),
    ({"restart": "always"}, {"Restart": "always", "RestartSec": "1s", "StartLimitIntervalSec": "0"}),
    ({"restart": "unless-stopped"}, {"Restart": "always"}),
    ({"restart": "on-failure", "restart_max_retries": 5}, {"Restart": "on-failure", "StartLimitBurst": "6", "StartLimitIntervalSec": "1h"}),
    (
        {"restart": "no", "deploy": {"restart_policy": {"condition": "on-failure", "delay": 2.5, "max_attempts": 3, "window": 120}}},
        {"Restart": "on-failure", "RestartSec": "2500ms", "StartLimitBurst": "4", "StartLimitIntervalSec": "120s"},
    ),
    ({"deploy": {"restart_policy": {"condition": "none"}}}, {"Restart": "no"}),
]


@pytest.mark.parametrize("engine", ["podman", "docker"])
@pytest.mark.parametrize(("spec", "expected"), RESTARTS)
def test_restart_mapping(engine: str, spec: dict[str, object], expected: dict[str, str]) -> None:
    r = render_app(app_of({"s": {"image": "x", **spec}}), engine=engine)  # type: ignore[arg-type]
    u = unit(r.files["t-s-1.service"])
    for key, value in expected.items():
        section = "Unit" if key.startswith("StartLimit") else "Service"
        assert u.lookup(section, key) == value, key


def test_resource_limits_are_systemd_properties_for_podman() -> None:
    app = app_of({"s": {"image": "x", "deploy": {"resources": {"limits": {"cpus": 1.5, "memory": 1 << 20, "pids": 50}, "reservations": {"memory": 1 << 19}}}}})
    u = unit(render_app(app).files["t-s-1.service"])
    assert (u.lookup("Service", "MemoryMax"), u.lookup("Service", "CPUQuota"), u.lookup("Service", "TasksMax")) == (
        str(1 << 20), "150%", "50")
    assert u.lookup("Service", "MemoryLow") == str(1 << 19)
    d = systemd.split_command_line(exec_start(render_app(app, engine="docker").files["t-s-1.service"]))
    assert d[d.index("--cpus") + 1] == "1.5" and d[d.index("--pids-limit") + 1] == "50"


def test_long_grace_period_and_health_wait_extend_timeouts() -> None:
    r = render_app(example("three-tier"))
    db = unit(r.files["three-tier-db-1.service"])
    assert db.lookup("Service", "TimeoutStopSec") is None  # 60 s grace + 30 s fits in the default 90 s
    assert db.lookup("Service", "TimeoutStartSec") == "112"
    slow = unit(render_app(app_of({"s": {"image": "x", "stop_grace_period": 120}})).files["t-s-1.service"])
    assert slow.lookup("Service", "TimeoutStopSec") == "150"


def test_replicas_and_render_service() -> None:
    app = example("three-tier")
    r = render_app(app, replicas={"app": [2], "db": [1]})
    assert sorted(r.files) == ["three-tier-app-2.service", "three-tier-back-network.service", "three-tier-db-1.service", "three-tier-db-data-volume.service"]
    one = render_service(app, "proxy", replicas={"proxy": [1], "app": [3]})
    assert sorted(one.files) == ["three-tier-back-network.service", "three-tier-front-network.service", "three-tier-proxy-1.service"]
    proxy = unit(one.files["three-tier-proxy-1.service"])
    assert proxy.lookup_all("Unit", "BindsTo") == ["three-tier-app-3.service"]
    alone = render_service(app, "app", replicas={"app": [1]})
    assert any("no replica on this host" in w for w in alone.warnings)
    with pytest.raises(RenderError):
        render_service(app, "nope")
    with pytest.raises(RenderError):
        render_app(app, replicas={"app": [0]})
    with pytest.raises(RenderError):
        render_app(app, engine="rkt")  # type: ignore[arg-type]


def test_host_options() -> None:
    host = HostOptions(podman_args=("--cgroups=disabled",), docker_args=("--log-driver=journald",), environment={"REDIS_HOST": "10.0.0.9", "X_DISCOVERY": "a b"})
    r = render_app(example("guestbook"), host=host)
    words = systemd.split_command_line(exec_start(r.files["guestbook-web-1.service"]))
    assert words[-2:] == ["--cgroups=disabled", "localhost:5000/fusion/guestbook-web:1"]
    assert "REDIS_HOST=redis" in words and "X_DISCOVERY=a b" in words  # the service's own wins
    d = render_app(example("guestbook"), engine="docker", host=host)
    dwords = systemd.split_command_line(exec_start(d.files["guestbook-web-1.service"]))
    assert "--log-driver=journald" in dwords and "X_DISCOVERY=a b" in dwords


@pytest.mark.parametrize(
    ("service", "message"),
    [
        ({"image": "x", "command": ["echo", ""]}, "empty arguments"),
        ({"image": "x", "labels": {"a=b": "c"}}, "cannot contain '='"),
        ({"image": "x", "volumes": [{"type": "bind", "source": "/srv/my data", "target": "/d"}]}, "RequiresMountsFor"),
    ],
)
def test_values_podman_cannot_carry_are_errors(service: dict[str, object], message: str) -> None:
    with pytest.raises(RenderError, match=message):
        render_app(app_of({"s": service}))


def test_bind_mount_creates_host_path_and_requires_mounts() -> None:
    app = app_of({"s": {"image": "x", "volumes": [{"type": "bind", "source": "/srv/100%", "target": "/d", "read_only": True, "selinux": "Z"}]}})
    r = render_app(app)
    u = unit(r.files["t-s-1.service"])
    assert "/srv/100%%" in u.lookup_all("Unit", "RequiresMountsFor")
    assert u.lookup("Service", "ExecStartPre") == "/usr/bin/mkdir -p /srv/100%%"
    assert "-v /srv/100%%:/d:ro,Z" in exec_start(r.files["t-s-1.service"])


def test_entrypoint_and_health_forms() -> None:
    app = app_of(
        {
            "a": {"image": "x", "entrypoint": ["/bin/sh", "-c"], "command": ["echo hi"], "healthcheck": {"test": ["CMD", "check"]}},
            "b": {"image": "x", "entrypoint": [], "healthcheck": {"disable": True}},
        }
    )
    r = render_app(app)
    a = systemd.split_command_line(exec_start(r.files["t-a-1.service"]))
    assert a[a.index("--entrypoint") + 1] == '["/bin/sh","-c"]' and a[-1] == "echo hi"
    assert a[a.index("--health-cmd") + 1] == '["CMD-SHELL","check"]'
    b = systemd.split_command_line(exec_start(r.files["t-b-1.service"]))
    assert b[b.index("--entrypoint") + 1] == "[]" and b[b.index("--health-cmd") + 1] == "none"
    d = systemd.split_command_line(exec_start(render_app(app, engine="docker").files["t-a-1.service"]))
    assert d[d.index("--entrypoint") + 1] == "/bin/sh" and d[-3:] == ["x", "-c", "echo hi"]
