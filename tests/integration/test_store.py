"""The store against a real etcd: transactions, conflicts, leases, watches, typed records."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from common.runner import run
from common.store import Compare, ConflictError, Decision, Delete, EtcdConfig, Put, Store, StoreError
from orchestrator import etcd_local
from specs.cluster import AppCurrent, ContainerStatus, CordonRecord, HostRecord, Keys

pytest_plugins = ["etcd_fixture"]
pytestmark = pytest.mark.integration


def test_put_get_range(store: Store) -> None:
    k = store.keys.root
    store.put(f"{k}/a/1", b"one")
    store.put(f"{k}/a/2", b"two")
    store.put(f"{k}/b", b"other")
    kvs, rev = store.range(f"{k}/a/")
    assert [(kv.key, kv.value) for kv in kvs] == [(f"{k}/a/1", b"one"), (f"{k}/a/2", b"two")]
    assert rev >= kvs[-1].mod_revision
    assert store.get(f"{k}/nope") is None


def test_decision_is_one_transaction_guarded_by_mod_revision(store: Store) -> None:
    key = store.keys.current("app")
    # create-only: compare mod_revision 0
    store.commit(Decision((Compare(key, 0),), (Put(key, b"v1"), Put(f"{key}-x", b"x"))))
    kv = store.get(key)
    assert kv is not None and kv.value == b"v1"
    with pytest.raises(ConflictError):
        store.commit(Decision((Compare(key, 0),), (Put(key, b"v2"),)))
    # a stale revision writes nothing at all
    store.put(key, b"v3")
    with pytest.raises(ConflictError):
        store.commit(Decision((Compare(key, kv.mod_revision),), (Put(key, b"v4"), Delete(f"{key}-x"))))
    assert store.get(key).value == b"v3"  # type: ignore[union-attr]
    assert store.get(f"{key}-x") is not None
    fresh = store.get(key)
    assert fresh is not None
    store.commit(Decision((Compare(key, fresh.mod_revision),), (Put(key, b"v5"), Delete(f"{key}-x"))))
    assert store.get(f"{key}-x") is None


def test_large_decision_is_split_when_the_cluster_limits_ops(tmp_path: Path) -> None:
    server = etcd_local.start(tmp_path / "data", max_txn_ops=128)  # etcd's default limit
    try:
        store = Store(EtcdConfig((server.endpoint,)), Keys("/split"))
        guard = "/split/current"
        store.commit(Decision((Compare(guard, 0),), (Put(guard, b"1"),) + tuple(
            Put(f"/split/k/{i:03d}", b"x") for i in range(300))))
        assert len(store.range("/split/k/")[0]) == 300
        assert store._limit <= 128  # remembered
        with pytest.raises(ConflictError):  # the guard still guards a split decision
            store.commit(Decision((Compare(guard, 0),), tuple(Put(f"/split/j/{i:03d}", b"x") for i in range(300))))
        assert store.range("/split/j/")[0] == []
        # anything else etcd refuses is reported in etcd's words
        with pytest.raises(StoreError, match="duplicate key"):
            store.commit(Decision(ops=(Put("/split/d", b"1"), Put("/split/d", b"2"))))
    finally:
        etcd_local.stop_pid(server.pid)


def test_delete_prefix(store: Store) -> None:
    p = store.keys.placements_prefix("h1")
    for i in range(3):
        store.put(f"{p}app/web/{i + 1}", b"{}")
    store.delete(p, prefix=True)
    assert store.range(p)[0] == []


def test_lease_expiry_removes_registration(store: Store) -> None:
    lease = store.lease_grant(1)
    store.register_host(HostRecord(name="h1", labels={"zone": "a"}, lease_ttl=1), lease)
    assert [h.name for h in store.hosts()] == ["h1"]
    assert store.lease_keepalive(lease) >= 1
    deadline = time.monotonic() + 10
    while store.hosts() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert store.hosts() == []
    assert store.lease_keepalive(lease) == -1


def test_watch_sees_puts_and_deletes_in_order(store: Store) -> None:
    prefix = store.keys.placements_prefix("h1")
    start = store.ping() + 1
    watch = store.watch(prefix, start_revision=start)
    try:
        store.put(f"{prefix}app/web/1", b"a")
        store.put(f"{store.keys.placements_prefix('h2')}app/web/1", b"not mine")
        store.put(f"{prefix}app/web/2", b"b")
        store.delete(f"{prefix}app/web/1")
        events = []
        deadline = time.monotonic() + 10
        while len(events) < 3 and time.monotonic() < deadline:
            events += watch.drain(1.0)
    finally:
        watch.cancel()
    assert [(e.type, e.kv.key[len(prefix):], e.kv.value) for e in events] == [
        ("PUT", "app/web/1", b"a"),
        ("PUT", "app/web/2", b"b"),
        ("DELETE", "app/web/1", b""),
    ]


def test_a_cancelled_watch_leaves_no_thread(store: Store) -> None:
    before = threading.active_count()
    watch = store.watch(store.keys.placements_prefix("h9"))
    assert watch.drain(0.2) == []
    watch.cancel()
    deadline = time.monotonic() + 0.5  # the worker thread goes with its stream
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before  # else Python's exit would wait for it


def test_typed_records(store: Store) -> None:
    now = 1700000000.0
    store.put(store.keys.current("guestbook"), AppCurrent(revision=1, generation=1, updated_at=now).to_json())
    store.set_cordon("h2", CordonRecord(reason="maintenance", at=now))
    store.put_status(ContainerStatus(app="guestbook", service="web", replica=1, host="h1",
                                     unit="guestbook-web-1.service", spec_revision=1, service_hash="abc",
                                     state="active", updated_at=now))
    assert store.apps() == ["guestbook"]
    current, mod = store.current("guestbook")
    assert current is not None and current.revision == 1 and mod > 0
    assert store.current("nope") == (None, 0)
    assert list(store.cordons()) == ["h2"]
    assert [s.ready for s in store.statuses("guestbook")] == [True]
    store.set_cordon("h2", None)
    assert store.cordons() == {}


def test_malformed_value_is_reported_with_its_key(store: Store) -> None:
    store.put(store.keys.host("bad"), b'{"name": "bad", "surprise": 1}')
    with pytest.raises(StoreError, match="malformed value at .*/hosts/bad"):
        store.hosts()


def test_unreachable_endpoint_then_failover(etcd_config: EtcdConfig) -> None:
    dead = "http://127.0.0.1:9"
    with pytest.raises(StoreError, match="cannot reach etcd"):
        Store(EtcdConfig((dead,), timeout=2)).ping()
    both = Store(EtcdConfig((dead, *etcd_config.endpoints), timeout=2))
    assert both.ping() > 0


def test_bad_urls_are_input_errors() -> None:
    from specs.errors import InputError

    for bad in ["", "127.0.0.1:2379", "ftp://x:1", "http://host"]:
        with pytest.raises(InputError):
            EtcdConfig.parse(bad)
    assert EtcdConfig.parse("http://a:1, https://b:2").endpoints == ("http://a:1", "https://b:2")


def _certs(d: Path) -> dict[str, Path]:
    """A throwaway CA, a server cert for 127.0.0.1 and a client cert (openssl, EC keys)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run(["openssl", "req", "-x509", *ec, "-keyout", d / "ca.key", "-out", d / "ca.crt", "-days", "1",
         "-subj", "/CN=fusion-test-ca"])
    # etcd 3.4's HTTP gateway dials its own gRPC server with the server cert: it needs clientAuth too.
    for name, usage in (("server", "serverAuth,clientAuth"), ("client", "clientAuth")):
        (d / f"{name}.ext").write_text(f"subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n")
        run(["openssl", "req", *ec, "-keyout", d / f"{name}.key", "-out", d / f"{name}.csr",
             "-subj", f"/CN=fusion-test-{name}"])
        run(["openssl", "x509", "-req", "-in", d / f"{name}.csr", "-CA", d / "ca.crt", "-CAkey", d / "ca.key",
             "-CAcreateserial", "-out", d / f"{name}.crt", "-days", "1", "-extfile", d / f"{name}.ext"])
    return {n: d / n for n in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


def test_tls_with_client_certificates(tmp_path: Path) -> None:
    c = _certs(tmp_path)
    tls = etcd_local.Tls(c["ca.crt"], c["server.crt"], c["server.key"], c["client.crt"], c["client.key"])
    server = etcd_local.start(tmp_path / "data", tls=tls)
    try:
        assert server.endpoint.startswith("https://")
        good = Store(EtcdConfig.parse(server.endpoint, ca_cert=str(c["ca.crt"]), cert=str(c["client.crt"]),
                                      key=str(c["client.key"])))
        good.put("/tls/x", b"1")
        assert good.get("/tls/x").value == b"1"  # type: ignore[union-attr]
        watch = good.watch("/tls/", start_revision=1)
        try:
            assert watch.get(5.0) is not None
        finally:
            watch.cancel()
        no_cert = Store(EtcdConfig.parse(server.endpoint, ca_cert=str(c["ca.crt"]), timeout=3))
        with pytest.raises(StoreError):
            no_cert.ping()
        # the same through the CLI's options
        from click.testing import CliRunner

        from cli.main import fusion

        good.register_host(HostRecord(name="tls-host"), 0)
        result = CliRunner().invoke(fusion, ["hosts", "--json", "--etcd", server.endpoint, "--etcd-ca", str(c["ca.crt"]),
                                             "--etcd-cert", str(c["client.crt"]), "--etcd-key", str(c["client.key"])])
        assert result.exit_code == 0, result.output
        assert '"name": "tls-host"' in result.output
    finally:
        etcd_local.stop_pid(server.pid)
