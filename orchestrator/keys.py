"""The etcd key layout of a Fusion cluster.

The layout and its JSON values are defined in :mod:`specs.cluster` (so that the host agent, which
must not import ``orchestrator``, builds exactly the same keys); this module re-exports them for the
orchestrator's side. In short::

    /fusion/apps/<app>/spec/<rev>                    SpecRevision     (kept forever: history, rollback)
    /fusion/apps/<app>/current                       AppCurrent       (live revision + generation)
    /fusion/placements/<host>/<app>/<service>/<n>    PlacementRecord  (orchestrator -> agent)
    /fusion/hosts/<host>                             HostRecord       (agent, under its lease)
    /fusion/status/<host>/<app>/<service>/<n>        ContainerStatus  (agent, under its lease)
    /fusion/cordon/<host>                            CordonRecord
    /fusion/logs/<host>/<id>[/<seq>]                 LogRequest / LogChunk
    /fusion/rollouts/..., /fusion/slots/...          rolling upgrades (issue 6)

Who writes what: the orchestrator writes apps/, placements/, cordon/; an agent writes only its own
hosts/<host>, status/<host>/... and the log chunks it is asked for. One orchestrator decision (a
deploy, a scale, a re-placement after host loss) is one etcd transaction guarded by the
mod_revision of ``apps/<app>/current`` (see :mod:`common.store`).
"""

from __future__ import annotations

from specs.cluster import (
    DEFAULT_ROOT,
    AppCurrent,
    ContainerStatus,
    CordonRecord,
    HostRecord,
    Keys,
    LogChunk,
    LogRequest,
    PlacementRecord,
    SpecRevision,
)

__all__ = [
    "DEFAULT_ROOT",
    "AppCurrent",
    "ContainerStatus",
    "CordonRecord",
    "HostRecord",
    "Keys",
    "LogChunk",
    "LogRequest",
    "PlacementRecord",
    "SpecRevision",
]
