"""The cluster CLI and the reconcile loop against a real etcd.

The hosts' side is played by a small in-test reporter that does what fusion-agent does on the wire
(registers under a lease, reads its placements, writes ContainerStatus records, answers log
requests) -- etcd itself is real; the agent proper is tested by the host engineer's tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import fusion
from common.store import Store
from orchestrator import etcd_local, reconcile
from specs.cluster import ContainerStatus, HostRecord, LogChunk, LogRequest, PlacementRecord, container_unit
from specs.errors import FusionError

pytest_plugins = ["etcd_fixture"]
pytestmark = pytest.mark.integration

GUESTBOOK = """
name: guestbook
services:
  web:
    image: {image}
    ports: ["8080:80"]
    depends_on: [redis]
    deploy:
      replicas: {replicas}
      placement:
        max_replicas_per_node: 1
        constraints: ["node.labels.zone==a"]
      update_config: {{parallelism: 1, failure_action: rollback}}
  redis:
    image: redis:7
"""


def spec(tmp_path: Path, image: str = "web:1", replicas: int = 2) -> str:
    path = tmp_path / f"guestbook-{image.replace(':', '-')}-{replicas}.yaml"
    path.write_text(GUESTBOOK.format(image=image, replicas=replicas))
    return str(path)


class Hosts:
    """Plays the agents of a few hosts on the wire: registration under leases, status reports."""

    def __init__(self, store: Store, zones: dict[str, str], ttl: int = 2) -> None:
        self.store = store
        self.leases = {}
        for name, zone in zones.items():
            lease = store.lease_grant(ttl)
            store.register_host(HostRecord(name=name, labels={"zone": zone}, address="127.0.0.1", lease_ttl=ttl), lease)
            self.leases[name] = lease
        self.failing_images: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def kill(self, name: str) -> None:
        self.store.lease_revoke(self.leases.pop(name))

    def _report(self) -> None:
        placed = set()
        for r in self.store.placements():
            if r.host not in self.leases:
                continue
            placed.add(self.store.keys.status(r.host, r.app, r.service, r.replica))
            spec = self.store.spec(r.app, r.spec_revision)
            assert spec is not None
            image = spec.app["services"][r.service]["image"]
            bad = image in self.failing_images
            status = ContainerStatus(
                app=r.app, service=r.service, replica=r.replica, host=r.host,
                unit=container_unit(r.app, r.service, r.replica), spec_revision=r.spec_revision,
                service_hash=r.service_hash, state="failed" if bad else "active",
                sub_state="failed" if bad else "running", message="image pull failed" if bad else "",
            )
            key = self.store.keys.status(r.host, r.app, r.service, r.replica)
            kv = self.store.get(key)
            if kv is None or kv.value != status.to_json():
                self.store.put(key, status.to_json(), lease=self.leases[r.host])
        for name in list(self.leases):  # a container no longer placed here has stopped: its report goes
            kvs, _ = self.store.range(self.store.keys.status_prefix(name))
            for kv in kvs:
                if kv.key not in placed:
                    self.store.delete(kv.key)
        for name in list(self.leases):
            kvs, _ = self.store.range(self.store.keys.logs_prefix(name))
            for kv in kvs:
                rest = kv.key[len(self.store.keys.logs_prefix(name)):]
                if "/" in rest:
                    continue
                req = LogRequest.model_validate_json(kv.value)
                chunk = self.store.keys.log_chunk(name, rest, 0)
                if self.store.get(chunk) is None:
                    self.store.put(chunk, LogChunk(lines=[f"{req.unit} line {i}" for i in range(2)], done=True).to_json(),
                                   lease=req.lease)

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            try:
                self._report()
                if time.monotonic() - last > 0.5:
                    for lease in self.leases.values():
                        self.store.lease_keepalive(lease)
                    last = time.monotonic()
            except Exception:  # a lease revoked under our feet: next round
                pass
            self._stop.wait(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for lease in self.leases.values():
            self.store.lease_revoke(lease)


@pytest.fixture()
def cluster(store: Store) -> Iterator[Hosts]:
    hosts = Hosts(store, {"h1": "a", "h2": "a", "h3": "b"})
    try:
        yield hosts
    finally:
        hosts.stop()


@pytest.fixture()
def run(store: Store, etcd_server: etcd_local.LocalEtcd):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    env = {"FUSION_ETCD": etcd_server.endpoint, "FUSION_ETCD_ROOT": store.keys.root,
           "FUSION_ETCD_MAX_TXN_OPS": str(etcd_server.max_txn_ops)}

    def invoke(*args: str, code: int = 0) -> str:
        """Run `fusion ARGS`; errors are rendered as `fusion` renders them (error: ..., exit code)."""
        result = runner.invoke(fusion, list(args), env=env)
        output, exit_code = result.output, result.exit_code
        if isinstance(result.exception, FusionError):
            output += "".join(f"error: {line}\n" for line in str(result.exception).splitlines())
            exit_code = result.exception.exit_code
        elif result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert exit_code == code, output
        return output

    return invoke


def snapshot(store: Store) -> list[tuple[str, bytes, int]]:
    kvs, _ = store.range(store.keys.root + "/")
    return [(kv.key, kv.value, kv.mod_revision) for kv in kvs
            if not kv.key.startswith((store.keys.status_prefix(), store.keys.hosts_prefix()))]


def test_deploy_ps_scale_rollback_rm(store: Store, cluster: Hosts, run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = run("deploy", spec(tmp_path), "--timeout", "30")
    assert "3 to create" in out and "+ guestbook/web/1 on h" in out
    assert "guestbook: revision 1 running and healthy" in out
    placed = {(r.service, r.replica): r.host for r in store.placements(app="guestbook")}
    assert {placed[("web", 1)], placed[("web", 2)]} == {"h1", "h2"}  # zone a, one per host

    # the same spec again: nothing moves, no new revision
    before = snapshot(store)
    assert "guestbook: nothing to change" in run("deploy", spec(tmp_path))
    assert snapshot(store) == before

    rows = __import__("json").loads(run("ps", "guestbook", "--json"))
    assert [(r["service"], r["replica"], r["state"]) for r in rows] == [
        ("redis", 1, "active"), ("web", 1, "active"), ("web", 2, "active")]
    assert "guestbook/web/2" in run("ps")

    out = run("scale", "guestbook/redis=2", "--timeout", "30")
    assert "+ guestbook/redis/2" in out and "revision 2 running and healthy" in out
    # a rolling update, one replica at a time (parallelism 1)
    out = run("deploy", spec(tmp_path, image="web:2"), "--timeout", "30")
    assert "2 to update" in out and "revision 3 running and healthy" in out
    assert {r.spec_revision for r in store.placements(app="guestbook") if r.service == "web"} == {3}

    out = run("history", "guestbook")
    assert "scale redis=2" in out
    lines = out.splitlines()[1:]
    assert [line.split()[0] for line in lines] == ["1", "2", "*"] and lines[-1].split()[1] == "3"
    out = run("rollback", "guestbook", "--timeout", "30")
    assert "revision 4 running and healthy" in out
    assert store.current("guestbook")[0].note == "rollback to 2"  # type: ignore[union-attr]

    out = run("rm", "guestbook")
    assert "removed (4 containers" in out
    assert store.placements(app="guestbook") == [] and store.current("guestbook")[0] is None
    assert [s.revision for s in store.specs("guestbook")] == [1, 2, 3, 4]  # never lost
    run("ps", "guestbook", code=2)


def test_unplaceable_spec_fails_clearly_and_changes_nothing(store: Store, cluster: Hosts, run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("deploy", spec(tmp_path), "--no-wait")
    before = snapshot(store)
    out = run("deploy", spec(tmp_path, replicas=3), "--no-wait", code=1)
    assert ("error: cannot place guestbook/web replica 3: max_replicas_per_node=1 "
            "and only 2 hosts match node.labels.zone==a") in out
    assert snapshot(store) == before
    run("scale", "guestbook/web=5", "--no-wait", code=1)
    assert snapshot(store) == before


def test_failed_update_is_rolled_back(store: Store, cluster: Hosts, run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("deploy", spec(tmp_path), "--timeout", "30")
    cluster.failing_images.add("web:bad")
    out = run("deploy", spec(tmp_path, image="web:bad"), "--timeout", "30", code=1)
    assert "did not become healthy" in out and "image pull failed" in out and "rolled back to revision 1" in out
    current, _ = store.current("guestbook")
    assert current is not None and current.note == "automatic rollback to 1" and current.revision == 3
    rows = __import__("json").loads(run("ps", "guestbook", "--json"))
    assert {r["state"] for r in rows} == {"active"}


def test_start_first_update_keeps_every_replica_running(store: Store, cluster: Hosts, run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    def start_first(image: str) -> str:
        path = tmp_path / f"start-first-{image.replace(':', '-')}.yaml"
        path.write_text(f"""
name: guestbook
services:
  web:
    image: {image}
    ports: ["8080:80"]
    deploy:
      replicas: 2
      placement: {{max_replicas_per_node: 1}}
      update_config: {{parallelism: 1, order: start-first}}
""")
        return str(path)

    run("deploy", start_first("web:1"), "--timeout", "30")
    _, revision = store.range(store.keys.status_prefix())
    out = run("deploy", start_first("web:2"), "--timeout", "30")
    assert "(start-first: until the update is done)" in out and "revision 2 running and healthy" in out
    # Replay the placements and the hosts' reports: the extra replica web/3 of revision 2 is
    # running before web/1 is replaced, and stopped only once web/2 runs revision 2 too.
    watch = store.watch(store.keys.root + "/", start_revision=revision + 1)
    try:
        events = watch.drain(5.0)
    finally:
        watch.cancel()
    seen = []
    for e in events:
        if e.kv.key.startswith(store.keys.placements_prefix()):
            seen.append(("placed" if e.type == "PUT" else "unplaced", e.kv.key.rsplit("/", 1)[1]))
        elif e.kv.key.startswith(store.keys.status_prefix()) and e.type == "PUT":
            status = ContainerStatus.model_validate_json(e.kv.value)
            if status.spec_revision == 2 and status.state == "active":
                seen.append(("running", str(status.replica)))
    assert [x for i, x in enumerate(seen) if x not in seen[:i]] == [
        ("placed", "3"), ("running", "3"), ("placed", "1"), ("running", "1"), ("placed", "2"), ("running", "2"),
        ("unplaced", "3")]
    assert sorted((r.replica, r.spec_revision) for r in store.placements(app="guestbook")) == [(1, 2), (2, 2)]


def test_deploy_waits_and_says_why_not(store: Store, cluster: Hosts, run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cluster.failing_images.add("redis:7")
    out = run("deploy", spec(tmp_path), "--timeout", "10", code=1)
    assert "guestbook revision 1 is not running and healthy" in out
    assert "guestbook/redis/1 on h" in out and "failed" in out


def test_cordon_hosts_and_logs(store: Store, cluster: Hosts, run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert "h1: cordoned" in run("cordon", "h1", "--reason", "maintenance")
    rows = __import__("json").loads(run("hosts", "--json"))
    assert [(r["name"], r["cordoned"]) for r in rows] == [("h1", True), ("h2", False), ("h3", False)]
    # only h2 is left in zone a
    out = run("deploy", spec(tmp_path), "--no-wait", code=1)
    assert "only 1 host match node.labels.zone==a" in out
    assert "uncordoned" in run("uncordon", "h1")
    run("deploy", spec(tmp_path), "--timeout", "30")
    out = run("logs", "guestbook/web/1")
    assert out.splitlines() == ["guestbook-web-1.service line 0", "guestbook-web-1.service line 1"]
    out = run("logs", "guestbook/web")
    assert "guestbook/web/2@h" in out and len(out.splitlines()) == 4
    run("logs", "guestbook/nope", code=2)


def test_host_loss_replaces_containers_and_keeps_specs(store: Store, run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hosts = Hosts(store, {"h1": "a", "h2": "a", "h3": "a"}, ttl=1)
    try:
        run("deploy", spec(tmp_path), "--timeout", "30")
        victim = next(r.host for r in store.placements(app="guestbook") if r.service == "web")
        notes: list[str] = []
        done = threading.Event()
        loop = threading.Thread(target=reconcile.reconcile_loop, args=(store,),
                                kwargs={"grace": 0, "duration": 20, "on_note": notes.append, "stop": done.is_set},
                                daemon=True)
        loop.start()
        time.sleep(1.0)
        t0 = time.monotonic()
        hosts.kill(victim)
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            if all(r.host != victim for r in store.placements(app="guestbook")):
                break
            time.sleep(0.1)
        elapsed = time.monotonic() - t0
        done.set()
        loop.join(timeout=15)
        placements = store.placements(app="guestbook")
        assert all(r.host != victim for r in placements), notes
        assert len(placements) == 3 and elapsed < 5, elapsed
        assert any("moved" in n for n in notes), notes
        assert [s.revision for s in store.specs("guestbook")] == [1]
        current, _ = store.current("guestbook")
        assert current is not None and current.generation == 2 and current.revision == 1
    finally:
        hosts.stop()


def test_reconcile_grace_keeps_unregistered_hosts_placements(store: Store, tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    hosts = Hosts(store, {"h1": "a", "h2": "a"}, ttl=1)
    try:
        run("deploy", spec(tmp_path), "--no-wait")
    finally:
        hosts.stop()
    store.register_host(HostRecord(name="h9", labels={"zone": "a"}), 0)
    # Both hosts are unregistered now; inside the grace period nothing moves to h9.
    before = store.placements(app="guestbook")
    reconcile.reconcile_loop(store, grace=30, duration=1.5)
    assert store.placements(app="guestbook") == before
    # After it, they do (as far as the constraints allow: one web replica per host).
    out = run("reconcile", "--once")
    assert "cannot place guestbook/web replica 2" in out
    placed = {(r.service, r.replica): r.host for r in store.placements(app="guestbook")}
    assert placed[("redis", 1)] == "h9"  # what could move, moved


def test_embedded_etcd_is_started_once_and_reused(tmp_path: Path) -> None:
    # two commands at once: one etcd
    found: list[etcd_local.LocalEtcd] = []
    racers = [threading.Thread(target=lambda: found.append(etcd_local.ensure(tmp_path))) for _ in range(2)]
    for t in racers:
        t.start()
    for t in racers:
        t.join(timeout=30)
    first = found[0]
    try:
        assert [f.pid for f in found] == [first.pid, first.pid]
        again = etcd_local.ensure(tmp_path)
        assert again.pid == first.pid and again.endpoint == first.endpoint
    finally:
        assert etcd_local.stop(tmp_path)
    assert not etcd_local.pid_alive(first.pid)
    # started again on the same ports, with the same data
    second = etcd_local.ensure(tmp_path)
    try:
        assert second.endpoint == first.endpoint and second.pid != first.pid
    finally:
        etcd_local.stop(tmp_path)


def test_placement_records_are_what_the_agent_reads(store: Store, cluster: Hosts, run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("deploy", spec(tmp_path), "--no-wait")
    kvs, _ = store.range(store.keys.placements_prefix("h1"))
    assert kvs
    for kv in kvs:
        r = PlacementRecord.model_validate_json(kv.value)
        assert kv.key == store.keys.placement("h1", r.app, r.service, r.replica)
        s = store.spec(r.app, r.spec_revision)
        assert s is not None and r.service in s.app["services"]


@pytest.mark.parametrize("example", ["guestbook.yaml", "three-tier.yaml"])
def test_examples_place_on_three_hosts(store: Store, cluster: Hosts, run, example: str) -> None:  # type: ignore[no-untyped-def]
    path = Path(__file__).resolve().parents[2] / "examples" / example
    for name, labels in (("e1", {"role": "edge"}), ("e2", {"role": "edge", "disk": "ssd"})):
        store.register_host(HostRecord(name=name, labels=labels), cluster.leases["h1"])
    before = snapshot(store)
    out = run("deploy", str(path), "--dry-run")
    assert "to create" in out
    assert snapshot(store) == before  # a dry run writes nothing
    out = run("deploy", str(path), "--no-wait")
    assert "revision 1 written" in out
    assert store.placements()


def test_bad_etcd_url_is_bad_input(run) -> None:  # type: ignore[no-untyped-def]
    assert "bad etcd URL" in run("hosts", "--etcd", "127.0.0.1:2379", code=2)


def test_chosen_cluster_is_the_default(store: Store, etcd_server: etcd_local.LocalEtcd, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSION_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("FUSION_ETCD", raising=False)
    store.register_host(HostRecord(name="chosen-host"), 0)
    etcd_local.use_cluster(etcd_local.ChosenCluster(etcd_server.endpoint, by="test"))
    result = CliRunner().invoke(fusion, ["hosts", "--json"], env={"FUSION_ETCD_ROOT": store.keys.root})
    assert result.exit_code == 0 and '"name": "chosen-host"' in result.output, result.output
    etcd_local.forget_cluster(endpoints="http://elsewhere:1")  # not ours to forget
    assert etcd_local.chosen_cluster() is not None
    etcd_local.forget_cluster(endpoints=etcd_server.endpoint)
    assert etcd_local.chosen_cluster() is None
    assert not (tmp_path / "etcd").exists()  # no local etcd was started
