"""The FleetLock server on 127.0.0.1 (random port) against the real etcd: a Zincati-style client's
lock/unlock cycle, recursion, contention, and the protocol's errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from common.store import Store
from orchestrator.upgrade import slots
from orchestrator.upgrade.fleetlock import FleetLockServer

pytest_plugins = ["etcd_fixture"]
pytestmark = pytest.mark.integration

HEADERS = {"fleet-lock-protocol": "true"}


def post(fleetlock_server: FleetLockServer, path: str, client: str | None, headers: dict[str, str] | None = None,
         body: Any = None) -> tuple[int, dict[str, str]]:
    data = json.dumps({"client_params": {"id": client, "group": "default"}}) if body is None else body
    r = requests.post(f"{fleetlock_server.url}{path}", data=data, headers=HEADERS if headers is None else headers, timeout=10)
    return r.status_code, r.json()


def test_lock_is_recursive_owned_and_released(fleetlock_server: FleetLockServer, store: Store) -> None:
    assert post(fleetlock_server, "/v1/pre-reboot", "m1")[0] == 200
    assert post(fleetlock_server, "/v1/pre-reboot", "m1")[0] == 200  # recursive
    status, body = post(fleetlock_server, "/v1/pre-reboot", "m2")
    assert status == 409 and body["kind"] == "failed_lock"
    [held] = slots.holders(store).values()
    assert held.holder == "m1" and held.owner is None and held.group == "default"
    assert post(fleetlock_server, "/v1/steady-state", "m2")[0] == 200  # unlock if held: m2 holds nothing
    assert len(slots.holders(store)) == 1
    assert post(fleetlock_server, "/v1/steady-state", "m1")[0] == 200
    assert slots.holders(store) == {}
    assert post(fleetlock_server, "/v1/pre-reboot", "m2")[0] == 200


def test_a_rollouts_slot_counts_and_cannot_be_unlocked(fleetlock_server: FleetLockServer, store: Store) -> None:
    assert slots.acquire(store, 1, "h1", "upgrade to 2", "r1")
    assert post(fleetlock_server, "/v1/pre-reboot", "m1") == (409, {"kind": "failed_lock",
                                                          "value": "all 1 reboot slot(s) are held"})
    status, body = post(fleetlock_server, "/v1/steady-state", "h1")
    assert status == 409 and body["kind"] == "failed_unlock" and "r1" in body["value"]


@pytest.mark.parametrize(
    ("path", "headers", "body", "status", "kind"),
    [
        ("/v1/pre-reboot", {}, None, 400, "bad_request"),  # no protocol header
        ("/v1/pre-reboot", {"fleet-lock-protocol": "false"}, None, 400, "bad_request"),
        ("/v1/pre-reboot", HEADERS, "not json", 400, "bad_request"),
        ("/v1/pre-reboot", HEADERS, json.dumps({"client_params": {"group": "default"}}), 400, "bad_request"),
        ("/v1/steady-state", HEADERS, json.dumps({"client_params": {"id": "", "group": "x"}}), 400, "bad_request"),
        ("/v1/elsewhere", HEADERS, None, 404, "not_found"),
    ],
)
def test_protocol_errors(fleetlock_server: FleetLockServer, path: str, headers: dict[str, str], body: str | None,
                         status: int, kind: str) -> None:
    got_status, got = post(fleetlock_server, path, "m1", headers=headers, body=body)
    assert (got_status, got["kind"]) == (status, kind) and got["value"]


def test_get_is_not_allowed(fleetlock_server: FleetLockServer) -> None:
    r = requests.get(f"{fleetlock_server.url}/v1/pre-reboot", headers=HEADERS, timeout=10)
    assert r.status_code == 405 and r.json()["kind"] == "method_not_allowed"
