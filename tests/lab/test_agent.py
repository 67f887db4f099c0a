"""fusion-agent in a booted lab host: a placement in etcd becomes a running container unit, an agent
restart restarts nothing, a changed service hash restarts the container, a removed placement
stops and removes it.

The agent is the real one: the host tree (examples/trees/fusion-host.yaml) installs Fusion and
enables fusion-agent.service, which reads the lab's etcd from /etc/fusion/lab.env.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator

import pytest
from labtools import wait_for

from common.store import Decision, EtcdConfig, Put, Store
from lab import ops
from lab.state import LabState
from specs.app import App
from specs.cluster import AppCurrent, ContainerStatus, LogChunk, LogRequest, PlacementRecord, SpecRevision

pytestmark = [pytest.mark.lab]

APP = "agenttest"
PORT = 18091
UNIT = f"{APP}-web-1.service"


def sh(state: LabState, host: str, script: str, check: bool = True) -> str:
    return ops.run_in(state, host, ["/bin/sh", "-c", script], check=check)


def place(store: Store, host: str, service_hash: str, revision: int, registry: str) -> None:
    app = App.model_validate(
        {
            "name": APP,
            "services": {
                "web": {
                    "image": f"{registry}/fusion/hello:1",
                    "environment": {"REV": str(revision)},
                    "ports": [{"target": 8080, "published": PORT}],
                }
            },
        }
    )
    k = store.keys
    now = time.time()
    spec = SpecRevision(revision=revision, app=app.model_dump(mode="json"), created_at=now, note="agent test")
    current = AppCurrent(revision=revision, generation=revision, updated_at=now)
    placement = PlacementRecord(
        app=APP, service="web", replica=1, host=host, spec_revision=revision, service_hash=service_hash
    )
    store.commit(
        Decision(
            ops=(
                Put(k.spec(APP, revision), spec.to_json()),
                Put(k.current(APP), current.to_json()),
                Put(k.placement(host, APP, "web", 1), placement.to_json()),
            )
        )
    )


def status(store: Store, host: str) -> ContainerStatus | None:
    found = store.statuses(app=APP, host=host)
    return found[0] if found else None


def status_where(store: Store, host: str, service_hash: str) -> ContainerStatus | None:
    """The test container's status once it is ready with ``service_hash``."""
    s = status(store, host)
    return s if s is not None and s.service_hash == service_hash and s.ready else None


def journal(state: LabState, host: str) -> str:
    """The test unit's status and journal, to explain a failed assertion."""
    return sh(state, host, f"systemctl status --no-pager {UNIT}; journalctl --no-pager -n 60 -u {UNIT} -u fusion-agent",
              check=False)


def unit_props(state: LabState, host: str) -> dict[str, str]:
    out = sh(state, host, f"systemctl show -p ActiveState,MainPID,NRestarts {UNIT}")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.fixture
def agent_lab(lab: LabState) -> Iterator[tuple[LabState, Store, str]]:
    store = Store(EtcdConfig.parse(lab.etcd_url))
    host = lab.hosts[0].name
    try:
        yield lab, store, host
    finally:
        store.delete(store.keys.app_prefix(APP), prefix=True)
        store.delete(store.keys.placements_prefix(host) + f"{APP}/", prefix=True)
        wait_for(
            "the agent to remove the test unit",
            lambda: sh(lab, host, f"test -e /etc/systemd/system/{UNIT} || echo gone", check=False).strip() == "gone",
            timeout=120,
        )


def test_agent_runs_restarts_and_removes_a_placement(agent_lab: tuple[LabState, Store, str]) -> None:
    lab, store, host = agent_lab
    address = lab.hosts[0].address

    has_agent = sh(lab, host, "systemctl cat fusion-agent.service >/dev/null 2>&1 && echo yes", check=False)
    assert has_agent.strip() == "yes", "the lab's host tree has no fusion-agent (FUSION_LAB_TREE=builtin?)"

    # the agent registered the host under a lease, with capacity and the booted tree
    record = wait_for("the host registration", lambda: next((h for h in store.hosts() if h.name == host), None))
    assert record.address == address and record.capacity.cpus and record.tree.booted

    # a placement becomes an active unit, reported to etcd with the placement's hash and ports
    t0 = time.monotonic()
    place(store, host, "hash-1", 1, lab.registry)
    s1 = wait_for("an active status", lambda: status_where(store, host, "hash-1"))
    print(f"placement -> active status in {time.monotonic() - t0:.1f}s")
    assert (s1.service_hash, s1.spec_revision, s1.unit) == ("hash-1", 1, UNIT)
    assert [p.host_port for p in s1.ports] == [PORT] and s1.address == address
    active = sh(lab, host, f"systemctl is-active {UNIT}", check=False).strip()
    assert active == "active", journal(lab, host)
    with urllib.request.urlopen(f"http://{address}:{PORT}/", timeout=10) as resp:
        assert "hello" in resp.read().decode()
    before = unit_props(lab, host)

    # `fusion logs` asks the agent for journal lines: one chunk, done, under the request's lease
    lease = store.lease_grant(10)
    request = store.keys.log_request(host, "agenttest")
    store.put(request, LogRequest(unit=UNIT, lines=20, lease=lease).to_json(), lease=lease)
    chunk = wait_for("a log chunk", lambda: store.get(store.keys.log_chunk(host, "agenttest", 1)), timeout=30)
    answer = LogChunk.model_validate_json(chunk.value)
    assert answer.done and answer.error is None and any("hello" in line for line in answer.lines), answer
    store.lease_revoke(lease)

    # restarting the agent restarts no container; --once agrees that nothing is to do
    sh(lab, host, "systemctl restart fusion-agent && systemctl is-active fusion-agent")
    once = sh(lab, host, "set -a; . /etc/fusion/lab.env; python3 -m host.agent --once 2>&1")
    assert "0 actions" in once, once
    assert unit_props(lab, host) == before
    assert status_where(store, host, "hash-1") is not None  # kept: the container kept running

    # a new service hash replaces the container
    place(store, host, "hash-2", 2, lab.registry)
    s2 = wait_for("the new hash active", lambda: status_where(store, host, "hash-2"))
    assert s2.spec_revision == 2
    assert unit_props(lab, host)["MainPID"] != before["MainPID"]

    # a deleted placement stops the unit (systemd finishes the stop job by itself), removes its
    # file and its status. The app goes first, as with `fusion rm`: the lab's controller would
    # place a deployed app's missing replica again.
    store.delete(store.keys.app_prefix(APP), prefix=True)
    store.delete(store.keys.placement(host, APP, "web", 1))
    wait_for("the status to go", lambda: status(store, host) is None, timeout=120)
    wait_for("the unit to stop", lambda: sh(lab, host, f"systemctl is-active {UNIT}", check=False).strip()
             in ("inactive", "unknown"), timeout=60)
