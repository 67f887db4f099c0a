"""A real etcd for integration tests, started once per session (pytest plugin; others may reuse it).

Use it with ``pytest_plugins = ["tests.integration.etcd_fixture"]`` at the top of a test module.
``etcd_server`` is the running server (Debian's /usr/bin/etcd on 127.0.0.1, random free ports, a
temp data dir; stopped by pid at the end of the session); ``store`` is a Store under a fresh key
root per test, so tests never see each other's keys.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.store import EtcdConfig, Store
from orchestrator import etcd_local
from orchestrator.upgrade.fleetlock import FleetLockServer
from specs.cluster import Keys


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[etcd_local.LocalEtcd]:
    base: Path = tmp_path_factory.mktemp("etcd")
    server = etcd_local.start(base / "data", log_path=base / "etcd.log")
    try:
        yield server
    finally:
        etcd_local.stop_pid(server.pid)


@pytest.fixture()
def etcd_config(etcd_server: etcd_local.LocalEtcd) -> EtcdConfig:
    return EtcdConfig((etcd_server.endpoint,), max_txn_ops=etcd_server.max_txn_ops)


@pytest.fixture()
def store(etcd_config: EtcdConfig) -> Store:
    return Store(etcd_config, Keys(f"/test-{uuid.uuid4().hex[:10]}"))


@pytest.fixture()
def fleetlock_server(store: Store) -> Iterator[FleetLockServer]:
    """The FleetLock server on 127.0.0.1 (a random port), one reboot slot, backed by ``store``."""
    s = FleetLockServer(store, ("127.0.0.1", 0), slot_count=1).start()
    try:
        yield s
    finally:
        s.stop()
