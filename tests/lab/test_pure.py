"""The lab's pure parts: boot loader entries, boot counting, health verdicts, the lab's layout.

No root, no processes: these run in the unit tier's time.
"""

from __future__ import annotations

import pytest

from lab import bootcount as bc
from lab.machine import etc_files, judge
from lab.services import registry_config
from lab.state import LabConfig, plan
from specs.errors import InputError

ENTRY_NEW = """title Debian GNU/Linux 13 (trixie) 2 (ostree:0)
version 3
options ostree=/ostree/boot.1/fusion/bbbb/0
linux /ostree/fusion-bbbb/vmlinuz
"""
ENTRY_OLD = """title Debian GNU/Linux 13 (trixie) 1 (ostree:1)
version 2
options quiet ostree=/ostree/boot.1/fusion/aaaa/0 rw
linux /ostree/fusion-aaaa/vmlinuz
"""


def test_parse_entry_reads_the_ostree_argument() -> None:
    e = bc.parse_entry("ostree-1-fusion.conf", ENTRY_OLD)
    assert e.version == "2"
    assert e.ostree_path == "/ostree/boot.1/fusion/aaaa/0"
    assert e.title.endswith("(ostree:1)")


def test_order_entries_puts_the_highest_version_first() -> None:
    old = bc.parse_entry("ostree-1-fusion.conf", ENTRY_OLD)
    new = bc.parse_entry("ostree-2-fusion.conf", ENTRY_NEW)
    assert bc.order_entries([old, new]) == [new, old]
    ten = old.model_copy(update={"version": "10", "file": "x.conf"})
    nine = old.model_copy(update={"version": "9", "file": "y.conf"})
    assert bc.order_entries([nine, ten])[0] == ten  # natural order, not string order


def _entries() -> list[tuple[bc.BootEntry, str]]:
    return [(bc.parse_entry("ostree-2-fusion.conf", ENTRY_NEW), "new.0"),
            (bc.parse_entry("ostree-1-fusion.conf", ENTRY_OLD), "old.0")]


def test_a_new_deployment_boots_on_trial() -> None:
    env = bc.BootEnv(good=("old.0",))
    choice = bc.choose_boot(_entries(), env)
    assert choice is not None
    assert (choice.deployment, choice.on_trial, choice.fallback_from) == ("new.0", True, None)


def test_failed_boots_use_up_the_tries_then_the_previous_deployment_boots() -> None:
    env = bc.BootEnv(good=("old.0",))
    env = bc.boot_failed(env, "new.0", max_tries=2)
    assert env.tries == {"new.0": 1} and env.failed == ()
    assert bc.choose_boot(_entries(), env).deployment == "new.0"  # type: ignore[union-attr]
    env = bc.boot_failed(env, "new.0", max_tries=2)
    assert env.failed == ("new.0",) and env.tries == {}
    choice = bc.choose_boot(_entries(), env)
    assert choice is not None
    assert (choice.deployment, choice.on_trial, choice.fallback_from) == ("old.0", False, "new.0")


def test_a_healthy_boot_makes_the_deployment_good() -> None:
    env = bc.boot_failed(bc.BootEnv(), "new.0", max_tries=3)
    env = bc.boot_succeeded(env, "new.0")
    assert env.good == ("new.0",) and env.tries == {}
    assert bc.choose_boot(_entries(), env).on_trial is False  # type: ignore[union-attr]
    assert bc.boot_succeeded(env, "new.0") == env  # idempotent


def test_nothing_left_to_boot() -> None:
    assert bc.choose_boot([], bc.BootEnv()) is None
    assert bc.choose_boot(_entries(), bc.BootEnv(failed=("new.0", "old.0"))) is None


@pytest.mark.parametrize(("state", "failed", "jobs", "check", "verdict"), [
    ("starting", [], True, None, "pending"),
    ("running", [], False, None, "healthy"),
    ("degraded", ["systemd-modules-load.service"], False, None, "healthy"),
    ("degraded", ["dbus.service"], False, None, "unhealthy"),
    ("running", [], False, "/usr/lib/fusion/health.d/50-x", "unhealthy"),
    ("maintenance", [], False, None, "unhealthy"),
    ("degraded", ["dbus.service"], True, None, "pending"),
])
def test_judge(state: str, failed: list[str], jobs: bool, check: str | None, verdict: str) -> None:
    assert judge(state, failed, jobs, check).verdict == verdict


def test_plan_gives_each_host_its_own_address_and_names() -> None:
    st = plan(LabConfig(name="lab", hosts=3, subnet="10.213.0.0/24"), "/var/lib/fusion/lab")
    assert st.bridge == "flbr-lab" and st.bridge_address == "10.213.0.1"
    assert [(h.name, h.address, h.netns, h.veth) for h in st.hosts] == [
        ("h1", "10.213.0.11", "fusion-lab-h1", "fl-lab-h1"),
        ("h2", "10.213.0.12", "fusion-lab-h2", "fl-lab-h2"),
        ("h3", "10.213.0.13", "fusion-lab-h3", "fl-lab-h3"),
    ]
    assert all(len(n) <= 15 for h in st.hosts for n in (h.veth, st.bridge))
    assert st.etcd_url == "http://10.213.0.1:2379" and st.registry == "10.213.0.1:5000"


@pytest.mark.parametrize(("name", "subnet"), [("toolongname", "10.213.0.0/24"), ("a-b", "10.213.0.0/24"),
                                               ("lab", "10.213.0.0/28"), ("lab", "fd00::/64")])
def test_plan_rejects_bad_names_and_subnets(name: str, subnet: str) -> None:
    with pytest.raises(InputError):
        plan(LabConfig(name=name, subnet=subnet), "/x")


def test_hosts_get_lab_settings_in_etc() -> None:
    st = plan(LabConfig(name="lab", hosts=2), "/x")
    files = etc_files(st, st.hosts[1])
    assert files["hostname"] == "h2\n"
    assert "10.213.0.11\th1" in files["hosts"] and "10.213.0.1\tlab etcd registry" in files["hosts"]
    assert 'cgroups = "disabled"' in files["containers/containers.conf.d/50-fusion-lab.conf"]
    reg = files["containers/registries.conf.d/50-fusion-lab.conf"]
    assert 'location = "10.213.0.1:5000"\ninsecure = true' in reg
    assert 'prefix = "localhost:5000"' in reg
    assert "FUSION_ETCD=http://10.213.0.1:2379" in files["fusion/lab.env"]


def test_registry_config_listens_where_asked() -> None:
    conf = registry_config("/data", "10.213.0.1:5000")
    assert "rootdirectory: /data" in conf and "addr: 10.213.0.1:5000" in conf


def test_forget_missing_deployments() -> None:
    env = bc.BootEnv(good=("a.0", "b.0"), failed=("c.0",), tries={"d.0": 1, "b.0": 1})
    assert bc.forget_missing(env, ["b.0", "d.0"]) == bc.BootEnv(good=("b.0",), tries={"d.0": 1, "b.0": 1})
