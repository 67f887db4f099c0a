"""What ``fusion upgrade status`` shows (pure): a table with a progress bar, or JSON-ready data."""

from __future__ import annotations

from typing import Any

from orchestrator.upgrade.machine import TERMINAL, RolloutState

BAR = 24


def summary(state: RolloutState) -> dict[str, Any]:
    """JSON-ready: the rollout, its counts and one row per host."""
    counts: dict[str, int] = {}
    for h in state.hosts:
        counts[h.state] = counts.get(h.state, 0) + 1
    return {
        "id": state.id,
        "version": state.version,
        "target": state.target,
        "phase": state.phase,
        "awaiting_approval": state.awaiting_approval,
        "failures": state.failures,
        "max_failures": state.max_failures,
        "counts": counts,
        "message": state.message,
        "hosts": [{"name": h.name, "state": h.state, "since": h.since, "deadline": h.deadline,
                   "message": h.message} for h in state.hosts],
    }


def render(state: RolloutState, now: float) -> str:
    """A few lines for a person: header, progress bar, one line per host."""
    finished = sum(1 for h in state.hosts if h.state in TERMINAL)
    total = len(state.hosts) or 1
    filled = round(BAR * finished / total)
    phase = "waiting for approval (fusion upgrade approve)" if state.awaiting_approval else state.phase
    lines = [
        f"rollout {state.id}: version {state.version} ({state.target[:12]}), {phase}",
        f"[{'#' * filled}{'.' * (BAR - filled)}] {finished}/{len(state.hosts)} hosts finished, "
        f"{state.failures}/{state.max_failures} failures",
    ]
    width = max((len(h.name) for h in state.hosts), default=4)
    for h in state.hosts:
        left = f" ({max(0, int(h.deadline - now))}s left)" if h.deadline is not None and h.state not in TERMINAL else ""
        lines.append(f"  {h.name:<{width}}  {h.state:<12} {h.message}{left}".rstrip())
    return "\n".join(lines)
