"""The status display and its JSON."""

from __future__ import annotations

import json

from orchestrator.upgrade.machine import HostProgress, new_rollout
from orchestrator.upgrade.status import render, summary


def test_render_and_summary() -> None:
    state = new_rollout("r1", "2", "abcdef0123456789", ["h1", "host-2", "h3"], 0.0, max_failures=2)
    state = state.model_copy(update={"hosts": (
        HostProgress(name="h1", state="done", message="on 2"),
        HostProgress(name="host-2", state="rebooting", deadline=700.0, message="rebooting"),
        state.hosts[2],
    )})
    text = render(state, 100.0)
    assert text.splitlines() == [
        "rollout r1: version 2 (abcdef012345), running",
        "[########................] 1/3 hosts finished, 0/2 failures",
        "  h1      done         on 2",
        "  host-2  rebooting    rebooting (600s left)",
        "  h3      waiting",
    ]
    data = summary(state)
    assert json.loads(json.dumps(data))["counts"] == {"done": 1, "rebooting": 1, "waiting": 1}
    assert [h["state"] for h in data["hosts"]] == ["done", "rebooting", "waiting"]


def test_render_says_when_approval_is_awaited() -> None:
    state = new_rollout("r1", "2", "abc", ["h1", "h2"], 0.0, canary=1)
    state = state.model_copy(update={"hosts": (HostProgress(name="h1", state="done"), state.hosts[1])})
    assert "waiting for approval" in render(state, 0.0)
