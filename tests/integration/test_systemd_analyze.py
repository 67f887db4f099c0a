"""Every generated unit of every example, for both engines, passes the real
``systemd-analyze verify``.

systemd is not PID 1 on this machine, but ``systemd-analyze verify`` works offline: it loads the
given unit files (found through ``SYSTEMD_UNIT_PATH=DIR:``, the trailing colon keeping the system's
own unit directories for targets such as ``network-online.target``), checks every directive, that
every unit they name exists, and that every ``Exec*=`` binary exists and is executable.
``--man=no`` skips the check that ``Documentation=`` man pages exist.

The podman units need ``/usr/bin/podman`` (Debian's ``podman``) and ``/usr/bin/mkdir``. The docker
units need ``/usr/bin/docker``: Debian 12's ``docker.io`` is the whole engine (150 MB, containerd,
a daemon), so the project installs ``podman-docker`` instead (scripts/apt-packages.txt): a 184 kB
package whose ``/usr/bin/docker`` is the Docker command line carried out by podman, a real way to
run these units on a podman host. The units also require ``docker.service``, the engine's daemon
unit, which that package does not ship: the test writes the one a podman-docker host uses
(podman's Docker-compatible API service) next to the generated units.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from common.runner import run
from specs.app import App
from units.render import HostOptions, render_app
from units.sources import load_any

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SOURCES = [EXAMPLES / "guestbook.yaml", EXAMPLES / "three-tier.yaml", EXAMPLES / "geard.json", EXAMPLES / "quadlet"]

DOCKER_SERVICE = """\
[Unit]
Description=Docker-compatible API (podman system service)
After=network-online.target

[Service]
ExecStart=/usr/bin/docker system service --time=0

[Install]
WantedBy=multi-user.target
"""

NASTY = App.model_validate(
    {
        "name": "nasty",
        "services": {
            "init": {"image": "busybox", "command": ["sh", "-c", "echo 100% $HOME \"q\" 'q' \\\\ ;"]},
            "svc": {
                "image": "busybox",
                "command": ["printf", "%s\\n", "${NOT_A_VAR}", "a;b", ";"],
                "environment": {"PCT": "%n%%", "DOLLAR": "$PATH $$", "NL": "a\nb", "Q": "\"'\\"},
                "labels": {"x.y": "%t $1"},
                "healthcheck": {"test": ["CMD-SHELL", "test -e /tmp/%h && echo $$"]},
                "volumes": [{"type": "bind", "source": "/srv/100%", "target": "/data/$x"}],
                "depends_on": {"init": {"condition": "service_completed_successfully"}},
                "restart": "on-failure",
                "restart_max_retries": 3,
                "deploy": {"resources": {"limits": {"cpus": 0.25, "memory": 1 << 26, "pids": 64}}},
            },
        },
    }
)


def render_all(engine: str, out: Path) -> list[str]:
    host = HostOptions(podman_args=("--cgroups=disabled",), environment={"DISCOVERY": "10.0.0.1:80"})
    apps = [load_any([p], env={}) for p in SOURCES] + [NASTY]
    names: list[str] = []
    for app in apps:
        result = render_app(app, engine=engine, host=host)  # type: ignore[arg-type]
        for name, text in result.files.items():
            assert not (out / name).exists(), f"two apps made {name}"
            (out / name).write_text(text)
            names.append(name)
    return sorted(names)


@pytest.mark.parametrize("engine", ["podman", "docker"])
def test_systemd_analyze_verify(engine: str, tmp_path: Path) -> None:
    binary = "/usr/bin/podman" if engine == "podman" else "/usr/bin/docker"
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} is missing: run scripts/setup (it installs podman and podman-docker)")
    names = render_all(engine, tmp_path)
    assert len(names) > 20
    if engine == "docker":
        (tmp_path / "docker.service").write_text(DOCKER_SERVICE)
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:", "SYSTEMD_LOG_LEVEL": "notice"}
    result = run(
        ["systemd-analyze", "verify", "--man=no", *(str(tmp_path / n) for n in names)],
        check=False,
        env=env,
        cwd=str(tmp_path),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a unit that names a missing dependency is reported."""
    result = render_app(load_any([EXAMPLES / "guestbook.yaml"], env={}), replicas={"web": [1], "redis": [1]})
    (tmp_path / "guestbook-web-1.service").write_text(result.files["guestbook-web-1.service"])
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"}
    r = run(["systemd-analyze", "verify", "--man=no", str(tmp_path / "guestbook-web-1.service")], check=False, env=env, timeout=60)
    assert r.returncode != 0 and "not found" in r.stderr


def test_podman_units_match_real_quadlet(tmp_path: Path) -> None:
    """The podman engine's `.service` units are what podman 5.4.2's own Quadlet generator makes from
    the same `.container`/`.volume`/`.network` files (``scripts/real-quadlet``), apart from
    the generator's header comment, ``SourcePath=`` (the files came from a directory) and the
    order of the options podman itself writes in random order."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformance"))
    import quadlet_harness as H

    host = HostOptions(podman_args=("--cgroups=disabled",), environment={"DISCOVERY": "10.0.0.1:80"})
    ours: dict[str, str] = {}
    for app in [load_any([p], env={}) for p in SOURCES] + [NASTY]:
        result = render_app(app, host=host)
        for name, text in result.quadlet.items():
            (tmp_path / name).write_text(text)
        ours.update(result.files)
    real = H.run_real([tmp_path])
    assert real.returncode == 0, real.stderr

    def norm(text: str) -> str:
        lines = [ln for ln in text.split("\n") if not ln.startswith("SourcePath=")]
        while lines and lines[0].startswith("#"):
            lines.pop(0)
        return H.canonical_text("\n".join(lines))

    assert sorted(real.files) == sorted(ours)
    for name, text in ours.items():
        assert norm(real.files[name]) == norm(text), f"{name}:\n{H._diff(norm(real.files[name]), norm(text))}"


def test_example_quadlet_files_work_with_real_quadlet(tmp_path: Path) -> None:
    """examples/quadlet/ is a set of ordinary Quadlet files: podman 5.4.2's generator accepts them,
    Fusion's generator makes the same units, and those units pass `systemd-analyze verify`."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformance"))
    import quadlet_harness as H

    real = H.run_real([EXAMPLES / "quadlet"])
    ours = H.run_ours_in_process([EXAMPLES / "quadlet"])
    assert real.returncode == 0 and ours.returncode == 0, real.stderr + ours.stderr
    comparison = H.compare(ours, real)
    assert comparison.equivalent, "\n".join(comparison.differences)
    for name, text in real.files.items():
        if name.endswith(".service"):
            (tmp_path / name).write_text(text)
    env = {**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:", "SYSTEMD_LOG_LEVEL": "notice"}
    names = sorted(str(p) for p in tmp_path.glob("*.service"))
    r = run(["systemd-analyze", "verify", "--man=no", *names], check=False, env=env, timeout=120)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
