"""A 2-host lab, end to end: boot, containers under systemd, upgrade by reboot, fallback, down.

The tests share one lab (see conftest.py) and run in file order: the upgrade and fallback tests
publish tree versions one after the other.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

import pytest

from lab import network, ops
from lab.state import LabState

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def sh(state: LabState, host: str, script: str) -> str:
    return ops.run_in(state, host, ["/bin/sh", "-c", script])


def http_get(url: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3) as resp:
                return resp.read().decode()
        except OSError as e:
            last = e
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer: {last}")


def statuses(state: LabState) -> dict[str, dict]:
    return {h["name"]: h for h in ops.status(state)["hosts"]}


def test_two_hosts_boot_from_the_same_deployment(lab: LabState) -> None:
    st = statuses(lab)
    assert [st[h]["state"] for h in ("h1", "h2")] == ["running", "running"]
    assert st["h1"]["booted"] and st["h1"]["booted"] == st["h2"]["booted"]
    for h in ("h1", "h2"):
        assert sh(lab, h, "systemctl is-system-running || true").strip() in ("running", "degraded")
        assert sh(lab, h, "hostname").strip() == h
        # ostree inside the host knows it runs from its deployment
        status = sh(lab, h, "ostree admin status")
        assert f"* {lab.os_name} {st[h]['booted']}.0" in status
    full = ops.status(lab)
    assert full["etcd"] == f"http://{lab.bridge_address}:2379"
    assert all(s["running"] for s in full["services"].values())


def test_cli_status_and_shell(lab: LabState) -> None:
    from click.testing import CliRunner

    from cli.main import fusion

    env = {"FUSION_LAB_DIR": str(Path(lab.root).parent)}
    result = CliRunner().invoke(fusion, ["lab", "status", "--name", lab.config.name, "--json"], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["etcd"] == lab.etcd_url and [h["state"] for h in data["hosts"]] == ["running", "running"]
    result = CliRunner().invoke(fusion, ["lab", "shell", "--name", lab.config.name, "h1", "true"], env=env)
    assert result.exit_code == 0
    result = CliRunner().invoke(fusion, ["lab", "shell", "--name", lab.config.name, "h1", "false"], env=env)
    assert result.exit_code == 1


def test_up_again_changes_nothing(lab: LabState) -> None:
    before = {h.name: ops.run_info(lab, h.name) for h in lab.hosts}
    t0 = time.monotonic()
    again = ops.up(lab.config, base=str(Path(lab.root).parent))
    assert time.monotonic() - t0 < 30
    assert again.daemons == lab.daemons
    after = {h.name: ops.run_info(lab, h.name) for h in lab.hosts}
    for h in before:
        assert after[h]["firmware_pid"] == before[h]["firmware_pid"]
        assert after[h]["boots"] == before[h]["boots"]


def test_hosts_reach_the_lab_services(lab: LabState) -> None:
    out = sh(lab, "h1", f"python3 -c \"import urllib.request as u; print(u.urlopen('{lab.etcd_url}/health').read().decode())\"")
    assert '"health":"true"' in out.replace(" ", "")
    assert sh(lab, "h2", "podman pull -q localhost:5000/fusion/hello:1 >/dev/null && echo pulled").strip() == "pulled"


QUADLET = """[Unit]
Description={name}
[Container]
Image={image}
PublishPort={port}:{port}
{env}PodmanArgs=--cgroups=disabled
[Install]
WantedBy=multi-user.target
"""


def install_container(lab: LabState, host: str, name: str, image: str, port: int, env: str = "") -> None:
    unit = QUADLET.format(name=name, image=image, port=port, env=env)
    sh(lab, host, f"mkdir -p /etc/containers/systemd && cat > /etc/containers/systemd/{name}.container <<'EOF'\n"
                  f"{unit}EOF\nsystemctl daemon-reload && systemctl start {name}.service")


def test_container_units_answer_on_published_ports(lab: LabState) -> None:
    h1, h2 = lab.hosts
    install_container(lab, "h2", "redis", "localhost:5000/fusion/redis:1", 6379)
    install_container(lab, "h1", "web", "localhost:5000/fusion/guestbook-web:1", 8080,
                      env=f"Environment=REDIS_HOST={h2.address} REDIS_PORT=6379\n")
    for host, unit in (("h1", "web"), ("h2", "redis")):
        assert sh(lab, host, f"systemctl is-active {unit}.service").strip() == "active"
        main_pid = sh(lab, host, f"systemctl show -p MainPID --value {unit}.service").strip()
        assert main_pid not in ("", "0")
    assert http_get(f"http://{h1.address}:8080/healthz").strip() == "ok"
    assert http_get(f"http://{h2.address}:6379/cgi-bin/kv?ping").strip() == "PONG"
    # web on h1 keeps its entries in the store on h2
    http_get(f"http://{h1.address}:8080/cgi-bin/guestbook?add=hello-from-the-lab")
    assert "hello-from-the-lab" in http_get(f"http://{h2.address}:6379/cgi-bin/kv?guestbook")


def test_kill_and_start(lab: LabState) -> None:
    old_leader = ops.leader(lab, "h2")
    ops.kill(lab, "h2")
    assert statuses(lab)["h2"]["state"] == "off"
    assert not Path(f"/proc/{old_leader}").exists()
    ops.start(lab, "h2", wait=120)
    assert statuses(lab)["h2"]["state"] == "running"
    # the container unit is enabled: it comes back with the host
    assert http_get(f"http://{lab.host('h2').address}:6379/cgi-bin/kv?ping").strip() == "PONG"


def test_reboot_into_a_newly_published_deployment(lab: LabState) -> None:
    old = statuses(lab)["h1"]["booted"]
    new = ops.publish_files(lab, {"/usr/lib/fusion/lab-test-release": "2\n"}, version="2")
    assert new != old
    sh(lab, "h1", "ostree admin upgrade")
    assert statuses(lab)["h1"]["default"] == new
    t0 = time.monotonic()
    ops.reboot(lab, "h1", wait=180)
    took = time.monotonic() - t0
    st = statuses(lab)["h1"]
    assert (st["state"], st["booted"], st["version"], st["fallback_from"]) == ("running", new, "2", None)
    assert sh(lab, "h1", "cat /usr/lib/fusion/lab-test-release").strip() == "2"
    boot = json.loads(sh(lab, "h1", "cat /var/lib/fusion-lab/boot.json"))
    assert boot["checksum"] == new and boot["fallback"] is False
    print(f"h1 reboot into the new deployment took {took:.1f}s")


def test_broken_tree_falls_back_to_the_previous_deployment(lab: LabState) -> None:
    good = statuses(lab)["h2"]["booted"]
    broken = ops.publish_files(
        lab, {"/usr/lib/fusion/health.d/50-always-fails": "#!/bin/sh\necho broken on purpose\nexit 1\n"},
        version="3-broken", modes={"/usr/lib/fusion/health.d/50-always-fails": 0o755})
    sh(lab, "h2", "ostree admin upgrade")
    assert statuses(lab)["h2"]["default"] == broken
    ops.reboot(lab, "h2", wait=240)
    st = statuses(lab)["h2"]
    assert st["state"] == "running"
    assert st["booted"] == good
    assert st["fallback_from"] and st["fallback_from"].startswith(broken)
    # the fallback was made the default, like `rpm-ostree rollback` after greenboot
    assert st["default"] == good
    boot = json.loads(sh(lab, "h2", "cat /var/lib/fusion-lab/boot.json"))
    assert boot["fallback"] is True and boot["fallback_from"].startswith(broken)
    history = ops.run_info(lab, "h2")["history"]
    failed = [b for b in history if b["deployment"].startswith(broken)]
    assert [b["outcome"] for b in failed] == ["failed-boot"] * lab.config.max_boot_tries
    assert "health check failed" in failed[-1]["reason"]
    # a later reboot does not try the broken deployment again
    ops.reboot(lab, "h2", wait=120)
    assert statuses(lab)["h2"]["booted"] == good


def test_down_leaves_nothing(lab: LabState) -> None:
    pids = [d.pid for d in lab.daemons]
    for h in lab.hosts:
        info = ops.run_info(lab, h.name)
        pids += [p for p in (info.get("firmware_pid"), info.get("nspawn_pid"), info.get("leader")) if p]
    assert ops.down(lab.config.name, str(Path(lab.root).parent)) == []
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid), f"process {pid} survived"
    assert not network.leftovers(lab)
    mounts = Path("/proc/self/mountinfo").read_text()
    assert lab.root not in mounts
    assert not any(n.startswith(f"fusion-{lab.config.name}-") for n in os.listdir("/run/netns")) \
        if os.path.isdir("/run/netns") else True
    for proc in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            cmd = proc.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        assert lab.root not in cmd, f"process left: {cmd}"
    assert not Path(lab.root).exists()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True
