"""host.agent.autoupdate: the pure decision (a table), its settings, and the marker's boot request."""

from __future__ import annotations

from dataclasses import replace

import pytest

from host.agent.autoupdate import DEFAULT_INTERVAL, Marker, Settings, View, next_step, settings_from_env
from specs.errors import InputError

A, B = "a" * 64, "b" * 64  # the booted commit, a newer one

# a host running A, healthy, checked 10 s ago (interval 60) and B is available; no lock, no rollout
BASE = View(booted=A, available=B, held=None, rebooted=False, healthy=True, rollout=False,
            now=1000.0, last_check=990.0, last_lock=None, interval=60.0)


@pytest.mark.parametrize(
    ("change", "step"),
    [
        # not holding a slot
        ({}, "lock"),
        ({"last_check": None}, "check"),  # never checked
        ({"last_check": 940.0}, "check"),  # the interval is over
        ({"available": None}, "nothing"),  # nothing known yet
        ({"available": A}, "nothing"),  # up to date
        ({"failed": True}, "nothing"),  # we came back from B before
        ({"healthy": False}, "nothing"),  # never start an update on a sick host
        ({"pinned": True}, "nothing"),  # fusion host deploy VERSION pinned it
        ({"pinned": True, "last_check": None}, "nothing"),
        ({"rollout": True}, "nothing"),  # a rollout moves this host
        ({"rollout": True, "last_check": None}, "nothing"),
        ({"last_lock": 980.0}, "nothing"),  # refused 20 s ago: wait for the interval
        ({"last_lock": 930.0}, "lock"),
        ({"first": True}, "unlock"),  # at start: give back a slot a crash may have left
        ({"first": True, "healthy": False}, "nothing"),
        ({"first": True, "rollout": True}, "nothing"),
        # holding a slot for B
        ({"held": B}, "stage-and-reboot"),
        ({"held": B, "last_check": None}, "stage-and-reboot"),
        ({"held": B, "booted": B}, "unlock"),  # back on B and healthy: done
        ({"held": B, "booted": B, "first": True}, "unlock"),
        ({"held": B, "booted": B, "healthy": False}, "nothing"),  # sick on B: keep the slot
        ({"held": B, "rebooted": True}, "unlock"),  # came back on A (fell back): give it back
        ({"held": B, "rebooted": True, "healthy": False}, "nothing"),
        ({"held": B, "rollout": True}, "unlock"),  # a rollout needs the slot
        ({"held": B, "booted": B, "healthy": False, "rollout": True}, "unlock"),
        ({"held": B, "pinned": True}, "stage-and-reboot"),  # pinned after we took the lock: finish it
    ],
)
def test_next_step(change: dict[str, object], step: str) -> None:
    assert next_step(replace(BASE, **change)) == step  # type: ignore[arg-type]


def test_one_update_from_check_to_unlock() -> None:
    """The steps in order, as the shell feeds their results back."""
    v = replace(BASE, available=None, last_check=None, first=True)
    assert next_step(v) == "unlock"
    v = replace(v, first=False)
    assert next_step(v) == "check"
    v = replace(v, available=B, last_check=v.now)
    assert next_step(v) == "lock"
    v = replace(v, held=B, last_lock=v.now)
    assert next_step(v) == "stage-and-reboot"
    # a new agent process on the new tree
    v = View(booted=B, available=None, held=B, rebooted=True, healthy=True, rollout=False, first=True, now=2000.0)
    assert next_step(v) == "unlock"
    v = replace(v, held=None, rebooted=False, first=False)
    assert next_step(v) == "check"
    assert next_step(replace(v, available=B, last_check=v.now)) == "nothing"


def test_settings_from_env() -> None:
    assert settings_from_env({}) is None
    assert settings_from_env({"FUSION_AUTO_UPDATE": "off", "FUSION_FLEETLOCK_URL": "junk"}) is None
    s = settings_from_env({"FUSION_AUTO_UPDATE": "fleetlock", "FUSION_FLEETLOCK_URL": "http://10.0.0.1:8095/"})
    assert s == Settings(url="http://10.0.0.1:8095", group="default", interval=DEFAULT_INTERVAL)
    s = settings_from_env({"FUSION_AUTO_UPDATE": "FleetLock", "FUSION_FLEETLOCK_URL": "https://lock.example/x",
                           "FUSION_FLEETLOCK_GROUP": "workers", "FUSION_AUTO_UPDATE_INTERVAL": "2.5"})
    assert s == Settings(url="https://lock.example/x", group="workers", interval=2.5)


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"FUSION_AUTO_UPDATE": "zincati"}, "expected 'off' or 'fleetlock'"),
        ({"FUSION_AUTO_UPDATE": "fleetlock"}, "needs FUSION_FLEETLOCK_URL"),
        ({"FUSION_AUTO_UPDATE": "fleetlock", "FUSION_FLEETLOCK_URL": "10.0.0.1:8095"}, "is not http://"),
        ({"FUSION_AUTO_UPDATE": "fleetlock", "FUSION_FLEETLOCK_URL": "ftp://x"}, "is not http://"),
        ({"FUSION_AUTO_UPDATE": "fleetlock", "FUSION_FLEETLOCK_URL": "http://x",
          "FUSION_AUTO_UPDATE_INTERVAL": "0"}, "above 0"),
        ({"FUSION_AUTO_UPDATE": "fleetlock", "FUSION_FLEETLOCK_URL": "http://x",
          "FUSION_AUTO_UPDATE_INTERVAL": "soon"}, "above 0"),
        ({"FUSION_AUTO_UPDATE": "fleetlock", "FUSION_FLEETLOCK_URL": "http://x",
          "FUSION_AUTO_UPDATE_INTERVAL": "nan"}, "above 0"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], words: str) -> None:
    with pytest.raises(InputError, match=words):
        settings_from_env(env)


def test_marker_round_trip_and_its_boot_request() -> None:
    m = Marker(target=B, at=1234.5)
    assert Marker.model_validate_json(m.model_dump_json()) == m
    r = m.request()
    assert (r.checksum, r.action, r.by) == (B, "boot", "fleetlock@1234.500")
    with pytest.raises(ValueError, match="extra"):
        Marker.model_validate({"target": B, "at": 1.0, "other": 1})
