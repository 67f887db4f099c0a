"""The FleetLock protocol's pure parts: the agent client's requests and reply parsing, the server's
--listen parser, and when a rollout's TreeRequest counts as carried out."""

from __future__ import annotations

import json

import pytest

from host.agent.fleetlock import (
    PRE_REBOOT,
    STEADY_STATE,
    LockRefused,
    ProtocolError,
    ServerError,
    UnlockRefused,
    check_url,
    parse_reply,
    request,
)
from orchestrator.upgrade.fleetlock import parse_listen
from orchestrator.upgrade.rollouts import carried_out
from specs.cluster import TreeRequest, TreeState
from specs.errors import InputError


def test_request_is_the_protocols_post() -> None:
    r = request("http://10.0.0.1:8095", PRE_REBOOT, "h1", "workers")
    assert r.get_method() == "POST" and r.full_url == "http://10.0.0.1:8095/v1/pre-reboot"
    assert r.get_header("Fleet-lock-protocol") == "true"  # urllib capitalizes header names
    assert isinstance(r.data, bytes)
    assert json.loads(r.data) == {"client_params": {"id": "h1", "group": "workers"}}
    assert request("http://x", STEADY_STATE, "h1", "default").full_url == "http://x/v1/steady-state"


def test_check_url() -> None:
    assert check_url(" http://10.0.0.1:8095/ ") == "http://10.0.0.1:8095"
    assert check_url("https://lock.example/fleet") == "https://lock.example/fleet"
    for bad in ("10.0.0.1:8095", "http://", "http:///x", "file:///tmp/x", ""):
        with pytest.raises(InputError):
            check_url(bad)


def reply(kind: str, value: str = "why") -> bytes:
    return json.dumps({"kind": kind, "value": value}).encode()


def test_ok_reply_returns_its_value() -> None:
    assert parse_reply(200, reply("ok", "h1 holds a reboot slot"), "x") == "h1 holds a reboot slot"
    assert parse_reply(200, b'{"kind": "ok"}', "x") == ""


@pytest.mark.parametrize(
    ("status", "body", "error", "kind"),
    [
        (409, reply("failed_lock", "all 1 reboot slot(s) are held"), LockRefused, "failed_lock"),
        (409, reply("failed_unlock"), UnlockRefused, "failed_unlock"),
        (400, reply("bad_request"), ProtocolError, "bad_request"),
        (404, reply("not_found"), ProtocolError, "not_found"),
        (405, reply("method_not_allowed"), ProtocolError, "method_not_allowed"),
        (503, reply("internal_error", "etcd is down"), ServerError, "internal_error"),
        (500, reply("something_new"), ServerError, "something_new"),  # a kind we do not know
        (200, reply("failed_lock"), LockRefused, "failed_lock"),  # the kind decides, not the status
        (502, b"<html>bad gateway</html>", ServerError, "internal_error"),  # not FleetLock at all
        (200, b'{"value": "no kind"}', ServerError, "internal_error"),
        (200, b'{"kind": 1, "value": "x"}', ServerError, "internal_error"),
    ],
)
def test_error_kinds_are_typed(status: int, body: bytes, error: type[Exception], kind: str) -> None:
    with pytest.raises(error) as info:
        parse_reply(status, body, "FleetLock /v1/pre-reboot")
    assert getattr(info.value, "kind") == kind and getattr(info.value, "status") == status  # noqa: B009
    assert str(info.value).startswith("FleetLock /v1/pre-reboot: ")


@pytest.mark.parametrize(
    ("text", "address"),
    [("127.0.0.1:8095", ("127.0.0.1", 8095)), ("0.0.0.0:0", ("0.0.0.0", 0)), ("[::1]:80", ("::1", 80)),
     ("lockhost:1", ("lockhost", 1))],
)
def test_parse_listen(text: str, address: tuple[str, int]) -> None:
    assert parse_listen(text) == address


@pytest.mark.parametrize("text", ["8095", ":8095", "host:", "host:port", "host:70000", "[::1:80", "a b:1"])
def test_parse_listen_rejects(text: str) -> None:
    with pytest.raises(InputError, match="is not HOST:PORT"):
        parse_listen(text)


@pytest.mark.parametrize(
    ("action", "tree", "done"),
    [
        ("fetch", TreeState(booted="old", fetched="new"), True),
        ("fetch", TreeState(booted="new"), True),
        ("fetch", TreeState(booted="old"), False),
        ("stage", TreeState(booted="old", staged="new"), True),
        ("stage", TreeState(booted="new"), True),
        ("stage", TreeState(booted="new", staged="other"), False),
        ("boot", TreeState(booted="new"), True),
        ("boot", TreeState(booted="old", staged="new"), False),
    ],
)
def test_carried_out(action: str, tree: TreeState, done: bool) -> None:
    assert carried_out(TreeRequest(checksum="new", action=action, by="r1"), tree) is done  # type: ignore[arg-type]
