"""The lab tier: a 2-host lab (``lab``) and a 3-host lab (``lab3``: the cluster and rolling-upgrade
tests), each brought up once per session, when a test first needs it, and shared.

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
NAME3 = "u"
SUBNET3 = "10.213.8.0/24"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent and "test_pure" not in str(item.fspath):
            item.add_marker(pytest.mark.lab)
    # test_lab.py's `lab down` test takes the shared 2-host lab away: it runs after every other test
    items.sort(key=lambda item: item.name == "test_down_leaves_nothing")


def _lab(name: str, hosts: int, subnet: str) -> Iterator[LabState]:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    ops.down(name, LABS_DIR)  # a lab left over by an interrupted run
    treefile = os.environ.get("FUSION_LAB_TREE")  # default: examples/trees/fusion-host.yaml
    config = LabConfig(name=name, hosts=hosts, subnet=subnet, health_deadline=60, max_boot_tries=2)
    try:
        yield ops.up(config, treefile=treefile, base=LABS_DIR, wait=240)
    finally:
        left = ops.down(name, LABS_DIR)
        assert not left, f"lab down left behind: {left}"


@pytest.fixture(scope="session")
def lab() -> Iterator[LabState]:
    yield from _lab(NAME, 2, SUBNET)


@pytest.fixture(scope="session")
def lab3() -> Iterator[LabState]:
    yield from _lab(NAME3, 3, SUBNET3)
