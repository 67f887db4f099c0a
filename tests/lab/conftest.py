"""The lab tier: one 2-host lab, brought up once per session and shared by the tests.

Needs root (network namespaces, mounts, systemd-nspawn). The lab lives under its own labs dir and
subnet, so it never meets a lab that a person brought up on the same machine. Its teardown runs
``lab down`` and fails the session if anything is left behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import ops
from lab.state import LabConfig, LabState

LABS_DIR = "/var/lib/fusion/lab-tests"
NAME = "t"
SUBNET = "10.213.9.0/24"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent and "test_pure" not in str(item.fspath):
            item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="session")
def lab() -> Iterator[LabState]:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    ops.down(NAME, LABS_DIR)  # a lab left over by an interrupted run
    treefile = os.environ.get("FUSION_LAB_TREE")  # default: the lab's built-in tree
    config = LabConfig(name=NAME, hosts=2, subnet=SUBNET, health_deadline=60, max_boot_tries=2)
    try:
        state = ops.up(config, treefile=treefile, base=LABS_DIR, wait=240)
        yield state
    finally:
        left = ops.down(NAME, LABS_DIR)
        assert not left, f"lab down left behind: {left}"
