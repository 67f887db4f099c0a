"""`fusion logs`: journal lines of containers, fetched from their hosts' agents through etcd.

The protocol (see ``specs.cluster``): the CLI grants a lease and puts a ``LogRequest`` at
``logs/<host>/<id>`` under it; the host's agent answers with ``LogChunk`` values at
``logs/<host>/<id>/<seq>`` attached to the same lease, so everything vanishes when the CLI stops.
No SSH, no direct connection to hosts: the orchestrator only ever talks to etcd.
Side effects: etcd writes, watches and a lease; time.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from common.store import Store
from orchestrator.ops import Clock
from specs.cluster import LogChunk, LogRequest, container_unit
from specs.errors import FusionError, InputError


def logs(
    store: Store,
    app: str,
    service: str,
    replica: int | None,
    *,
    lines: int,
    follow: bool,
    emit: Callable[[str, str], None],
    answer_timeout: float = 10.0,
    duration: float | None = None,
    clock: Clock = time.monotonic,
) -> None:
    """Ask the agents that run ``app/service[/replica]`` for journal lines (see specs.cluster:
    LogRequest/LogChunk) and ``emit(prefix, line)`` them as they arrive."""
    placed = [r for r in store.placements(app=app) if r.service == service and replica in (None, r.replica)]
    if not placed:
        raise InputError(f"no container {app}/{service}" + (f"/{replica}" if replica else "") + " is placed",
                         hint=f"`fusion ps {app}` lists them")
    statuses = {(s.host, s.service, s.replica): s for s in store.statuses(app=app)}
    lease = store.lease_grant(max(10, int(answer_timeout) + 5))
    request_id = uuid.uuid4().hex[:12]
    watches = []
    try:
        start_rev = store.ping() + 1
        for r in placed:
            s = statuses.get((r.host, r.service, r.replica))
            unit = s.unit if s else container_unit(r.app, r.service, r.replica)
            key = store.keys.log_request(r.host, f"{request_id}-{r.service}-{r.replica}")
            label = f"{r.app}/{r.service}/{r.replica}@{r.host}"
            watches.append((label, r.host, store.watch(f"{key}/", start_revision=start_rev)))
            store.put(key, LogRequest(unit=unit, lines=lines, follow=follow, lease=lease).to_json(), lease=lease)
        pending = {label for label, _, _ in watches}
        answered: set[str] = set()
        begin = last_keepalive = clock()
        while pending:
            now = clock()
            if duration is not None and now - begin > duration:
                break
            if now - begin > answer_timeout:
                silent = sorted(label for label in pending if label not in answered)
                if silent and not answered:
                    raise FusionError(
                        "no agent answered the log request within "
                        f"{answer_timeout:g}s ({', '.join(sorted({h for _, h, _ in watches}))})",
                        hint="is fusion-agent running on the host? `fusion hosts` shows registered hosts",
                    )
                for label in silent:
                    emit(label, f"(no answer from its host's agent within {answer_timeout:g}s)")
                    pending.discard(label)
                if not follow and now - begin > 3 * answer_timeout:
                    for label in sorted(pending):
                        emit(label, "(the agent stopped answering)")
                    break
            if now - last_keepalive > 3:
                store.lease_keepalive(lease)
                last_keepalive = now
            for label, _, w in watches:
                if label not in pending:
                    continue
                for e in w.drain(0.2):
                    if e.type != "PUT":
                        continue
                    chunk = LogChunk.model_validate_json(e.kv.value)
                    answered.add(label)
                    for line in chunk.lines:
                        emit(label, line)
                    if chunk.error:
                        emit(label, f"error: {chunk.error}")
                    if chunk.done:
                        pending.discard(label)
    finally:
        for _, _, w in watches:
            w.cancel()
        store.lease_revoke(lease)
