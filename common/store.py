"""The one module that talks to etcd (v3, through its HTTP gateway with ``etcd3gw``); the orchestrator
and the host agent both use it.

Side effects: every method here is a network call to etcd. Everything else in ``orchestrator`` and the agent
computes values and hands them to a :class:`Store` to read or write.

- Reads return records (``specs.cluster`` models) together with the ``mod_revision`` they were read
  at, so that a decision can be made on them and committed only if nothing changed meanwhile.
- Writes are :class:`Decision` values: one decision is one etcd transaction, guarded by compares on
  mod_revision (optimistic concurrency); a lost race raises :class:`ConflictError` and changes
  nothing, and the caller re-reads and decides again.
- :meth:`Store.watch` follows a key prefix from a revision on (no polling).

``--etcd URL[,URL...]`` gives the endpoints (tried in turn when one is unreachable), with optional
TLS client certificates (``https://`` URLs, a CA bundle, a client cert and key).
"""

from __future__ import annotations

import contextlib
import json
import queue
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import etcd3gw
import requests
from etcd3gw import exceptions as etcd_exc
from etcd3gw.utils import _decode, _encode, _increment_last_byte
from etcd3gw.watch import Watcher
from pydantic import BaseModel, ValidationError

from specs.cluster import (
    AppCurrent,
    ContainerStatus,
    CordonRecord,
    HostRecord,
    Keys,
    PlacementRecord,
    SpecRevision,
    TreeRequest,
)
from specs.errors import FusionError, InputError

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

DEFAULT_MAX_TXN_OPS = 128  # etcd's default --max-txn-ops


class StoreError(FusionError):
    """etcd could not be reached or refused a request."""


class ConflictError(FusionError):
    """Someone else changed what a decision was based on; nothing was written. Re-read and retry."""


@dataclass(frozen=True)
class EtcdConfig:
    endpoints: tuple[str, ...]
    ca_cert: str | None = None
    cert: str | None = None
    key: str | None = None
    timeout: float = 10.0
    max_txn_ops: int = 20000  # first try; lowered automatically if the cluster allows fewer

    @classmethod
    def parse(cls, urls: str, **kw: Any) -> EtcdConfig:
        endpoints = tuple(u.strip().rstrip("/") for u in urls.split(",") if u.strip())
        if not endpoints:
            raise InputError("--etcd needs at least one URL", hint="e.g. --etcd http://127.0.0.1:2379")
        for u in endpoints:
            parts = urlsplit(u)
            if parts.scheme not in ("http", "https") or not parts.hostname or not parts.port:
                raise InputError(f"bad etcd URL {u!r}", hint="write http(s)://HOST:PORT")
        return cls(endpoints, **kw)


@dataclass(frozen=True)
class KV:
    key: str
    value: bytes
    mod_revision: int
    create_revision: int
    lease: int = 0


@dataclass(frozen=True)
class Put:
    key: str
    value: bytes
    lease: int = 0


@dataclass(frozen=True)
class Delete:
    key: str
    prefix: bool = False


@dataclass(frozen=True)
class Compare:
    """The key's mod_revision must equal ``mod_revision`` (0: the key must not exist)."""

    key: str
    mod_revision: int


@dataclass(frozen=True)
class Decision:
    """One orchestrator decision: applied as one transaction iff every compare holds."""

    compares: tuple[Compare, ...] = ()
    ops: tuple[Put | Delete, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class WatchEvent:
    type: str  # "PUT" or "DELETE"
    kv: KV


@dataclass
class Watch:
    """Events under a prefix, from a revision on. Iterate with :meth:`get` (bounded wait)."""

    _watcher: Watcher
    _queue: queue.Queue[WatchEvent] = field(default_factory=queue.Queue)

    def get(self, timeout: float) -> WatchEvent | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def drain(self, first_timeout: float) -> list[WatchEvent]:
        """Wait up to ``first_timeout`` for one event, then take everything already queued."""
        first = self.get(first_timeout)
        if first is None:
            return []
        events = [first]
        with contextlib.suppress(queue.Empty):
            while True:
                events.append(self._queue.get_nowait())
        return events

    def cancel(self) -> None:
        # Stop the worker thread before ending its stream. etcd3gw does it the other way round: the
        # thread, back from the closed stream before it is told to stop, then idles in futurist's
        # queue for up to a second, and Python's exit waits for it.
        self._watcher._executor.shutdown(wait=False)
        self._watcher.stop()


def _kv(item: dict[str, Any]) -> KV:
    return KV(
        key=_decode(item["key"]).decode(),
        value=_decode(item.get("value", "")),
        mod_revision=int(item.get("mod_revision", 0)),
        create_revision=int(item.get("create_revision", 0)),
        lease=int(item.get("lease", 0)),
    )


def _op(op: Put | Delete) -> dict[str, Any]:
    if isinstance(op, Put):
        req: dict[str, Any] = {"key": _encode(op.key), "value": _encode(op.value)}
        if op.lease:
            req["lease"] = op.lease
        return {"request_put": req}
    req = {"key": _encode(op.key)}
    if op.prefix:
        req["range_end"] = _encode(_increment_last_byte(op.key))
    return {"request_delete_range": req}


class Store:
    """A connection to etcd plus typed reads and transactional writes of Fusion's records."""

    def __init__(self, config: EtcdConfig, keys: Keys | None = None) -> None:
        self.config = config
        self.keys = keys or Keys()
        self._clients = [self._client(u) for u in config.endpoints]
        self._current = 0
        self._limit = max(1, config.max_txn_ops)  # operations per transaction (shrinks if etcd says so)

    def _client(self, url: str) -> etcd3gw.Etcd3Client:
        parts = urlsplit(url)
        assert parts.hostname and parts.port
        session = requests.Session()
        if self.config.ca_cert:
            session.verify = self.config.ca_cert
            # Otherwise REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE from the environment win over session.verify.
            session.trust_env = False
        if self.config.cert and self.config.key:
            session.cert = (self.config.cert, self.config.key)
        client = etcd3gw.client(
            host=parts.hostname,
            port=parts.port,
            protocol=parts.scheme,
            timeout=self.config.timeout,
            api_path="/v3/",  # etcd >= 3.4; saves a /version round trip per client
        )
        # Set afterwards, not as client(session=...): Debian trixie's etcd3gw 2.4 (in host trees)
        # has no such argument; every version keeps its session in this attribute.
        client.session = session
        return client

    # --- plumbing ---------------------------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to the gateway, trying each endpoint in turn while they are unreachable."""
        last: Exception | None = None
        for i in range(len(self._clients)):
            index = (self._current + i) % len(self._clients)
            client = self._clients[index]
            try:
                result: dict[str, Any] = client.post(client.get_url(path), json=body)
                self._current = index
                return result
            except (etcd_exc.ConnectionFailedError, etcd_exc.ConnectionTimeoutError) as e:
                last = e
            except etcd_exc.Etcd3Exception as e:
                raise StoreError(f"etcd refused {path}: {_etcd_message(e)}") from e
        raise StoreError(
            f"cannot reach etcd at {', '.join(self.config.endpoints)}: {type(last).__name__}",
            hint="is etcd running? pass --etcd URL (or set FUSION_ETCD), or omit it to use the local one",
        )

    def ping(self) -> int:
        """The cluster's current revision (raises StoreError if unreachable)."""
        return int(self._post("/maintenance/status", {})["header"]["revision"])

    # --- generic reads ----------------------------------------------------------------------------

    def get(self, key: str) -> KV | None:
        kvs, _ = self._range(key, None)
        return kvs[0] if kvs else None

    def range(self, prefix: str) -> tuple[list[KV], int]:
        """Every key under ``prefix`` (sorted by key) and the revision they were read at."""
        return self._range(prefix, _increment_last_byte(prefix))

    def _range(self, key: str, range_end: str | None, revision: int | None = None) -> tuple[list[KV], int]:
        body: dict[str, Any] = {"key": _encode(key), "sort_order": 1, "sort_target": 0}
        if range_end is not None:
            body["range_end"] = _encode(range_end)
        if revision is not None:
            body["revision"] = revision
        result = self._post("/kv/range", body)
        return [_kv(i) for i in result.get("kvs", [])], int(result["header"]["revision"])

    def _records(self, prefix: str, model: type[M]) -> list[tuple[M, KV]]:
        kvs, _ = self.range(prefix)
        out = []
        for kv in kvs:
            try:
                out.append((model.model_validate_json(kv.value), kv))
            except ValidationError as e:
                raise StoreError(f"malformed value at {kv.key}: {e.errors()[0]['msg']}") from e
        return out

    # --- writes -----------------------------------------------------------------------------------

    def commit(self, decision: Decision) -> int:
        """Apply ``decision`` as one transaction; return the new revision. ConflictError if a compare
        failed (then nothing was written).

        If etcd refuses the transaction as too big (more operations than its ``--max-txn-ops``,
        default 128, or more bytes than ``--max-request-bytes``), it is split: the first part
        carries the compares, the rest follow unconditionally, and the smaller size is remembered.
        Decisions put their guard key (the app's ``current``) first, so a concurrent decision still
        conflicts. The local etcd is started with high limits, so there nothing is ever split."""
        ops = list(decision.ops)
        compares = [
            {"key": _encode(c.key), "result": "EQUAL", "target": "MOD", "mod_revision": c.mod_revision}
            for c in decision.compares
        ]
        first, rest = ops[: self._limit], ops[self._limit :]
        revision = self._txn(compares, first, decision.note)
        while rest:
            chunk, rest = rest[: self._limit], rest[self._limit :]
            revision = self._txn([], chunk, decision.note)
        return revision

    def _txn(self, compares: list[dict[str, Any]], ops: list[Put | Delete], note: str) -> int:
        try:
            result = self._post("/kv/txn", {"compare": compares, "success": [_op(o) for o in ops], "failure": []})
        except StoreError as e:
            if not _too_big(e) or len(ops) <= 1:
                raise
            half = len(ops) // 2
            self._limit = DEFAULT_MAX_TXN_OPS if half > DEFAULT_MAX_TXN_OPS and "operations" in str(e) else half
            self._limit = min(self._limit, half)
            head, tail = ops[: self._limit], ops[self._limit :]
            revision = self._txn(compares, head, note)
            while tail:
                chunk, tail = tail[: self._limit], tail[self._limit :]
                revision = self._txn([], chunk, note)
            return revision
        if compares and not result.get("succeeded", False):
            raise ConflictError(
                f"the cluster changed while deciding{' to ' + note if note else ''}", hint="run the command again"
            )
        return int(result["header"]["revision"])

    def put(self, key: str, value: bytes, lease: int = 0) -> int:
        return self.commit(Decision(ops=(Put(key, value, lease),)))

    def delete(self, key: str, prefix: bool = False) -> int:
        return self.commit(Decision(ops=(Delete(key, prefix),)))

    # --- leases -----------------------------------------------------------------------------------

    def lease_grant(self, ttl: int) -> int:
        return int(self._post("/lease/grant", {"TTL": ttl, "ID": 0})["ID"])

    def lease_keepalive(self, lease: int) -> int:
        """Refresh a lease; returns its TTL, or -1 if it has already expired."""
        result = self._post("/lease/keepalive", {"ID": lease})
        return int(result.get("result", {}).get("TTL", -1))

    def lease_revoke(self, lease: int) -> None:
        with contextlib.suppress(StoreError):
            self._post("/kv/lease/revoke", {"ID": lease})

    # --- watches ----------------------------------------------------------------------------------

    def watch(self, prefix: str, start_revision: int | None = None, *, into: Watch | None = None) -> Watch:
        """Follow every change under ``prefix`` from ``start_revision`` (inclusive) on. With
        ``into``, the events join that watch's queue (one wait for several prefixes)."""
        events: queue.Queue[WatchEvent] = queue.Queue() if into is None else into._queue

        def callback(event: Any) -> None:
            kv = event["kv"]
            events.put(
                WatchEvent(
                    event.get("type", "PUT"),
                    KV(
                        key=kv["key"].decode() if isinstance(kv["key"], bytes) else str(kv["key"]),
                        value=kv.get("value", b""),
                        mod_revision=int(kv.get("mod_revision", 0)),
                        create_revision=int(kv.get("create_revision", 0)),
                        lease=int(kv.get("lease", 0)),
                    ),
                )
            )

        client = self._clients[self._current]
        try:
            watcher = Watcher(
                client, prefix, callback, range_end=_increment_last_byte(prefix), start_revision=start_revision
            )
        except Exception as e:  # requests' errors while opening the stream
            raise StoreError(f"cannot watch {prefix} on {self.config.endpoints[self._current]}: {e}") from e
        return Watch(watcher, events)

    # --- typed reads ------------------------------------------------------------------------------

    def hosts(self) -> list[HostRecord]:
        return [r for r, _ in self._records(self.keys.hosts_prefix(), HostRecord)]

    def cordons(self) -> dict[str, CordonRecord]:
        prefix = self.keys.cordon_prefix()
        return {kv.key[len(prefix) :]: r for r, kv in self._records(prefix, CordonRecord)}

    def tree_request(self, host: str) -> TreeRequest | None:
        kv = self.get(self.keys.tree(host))
        return None if kv is None else TreeRequest.model_validate_json(kv.value)

    def set_tree_request(self, host: str, request: TreeRequest | None) -> None:
        if request is None:
            self.delete(self.keys.tree(host))
        else:
            self.put(self.keys.tree(host), request.to_json())

    def apps(self) -> list[str]:
        """Names of the apps that are deployed now (that have a ``current``)."""
        keys, _ = self._range_keys_only(self.keys.apps_prefix())
        prefix = self.keys.apps_prefix()
        return sorted({k[len(prefix) :].split("/")[0] for k in keys if k.endswith("/current")})

    def current(self, app: str) -> tuple[AppCurrent | None, int]:
        """The app's current record and its mod_revision (0 when the app is not deployed)."""
        kv = self.get(self.keys.current(app))
        if kv is None:
            return None, 0
        return AppCurrent.model_validate_json(kv.value), kv.mod_revision

    def spec(self, app: str, revision: int) -> SpecRevision | None:
        kv = self.get(self.keys.spec(app, revision))
        return SpecRevision.model_validate_json(kv.value) if kv else None

    def specs(self, app: str) -> list[SpecRevision]:
        return [r for r, _ in self._records(self.keys.specs_prefix(app), SpecRevision)]

    def last_spec_revision(self, app: str) -> int:
        kvs, _ = self._range_keys_only(self.keys.specs_prefix(app))
        return int(kvs[-1].rsplit("/", 1)[1]) if kvs else 0

    def _range_keys_only(self, prefix: str) -> tuple[list[str], int]:
        body = {
            "key": _encode(prefix),
            "range_end": _encode(_increment_last_byte(prefix)),
            "keys_only": True,
            "sort_order": 1,
            "sort_target": 0,
        }
        result = self._post("/kv/range", body)
        return [_decode(i["key"]).decode() for i in result.get("kvs", [])], int(result["header"]["revision"])

    def placements(self, app: str | None = None, host: str | None = None) -> list[PlacementRecord]:
        records = [r for r, _ in self._records(self.keys.placements_prefix(host), PlacementRecord)]
        return [r for r in records if app is None or r.app == app]

    def statuses(self, app: str | None = None, host: str | None = None) -> list[ContainerStatus]:
        records = [r for r, _ in self._records(self.keys.status_prefix(host), ContainerStatus)]
        return [r for r in records if app is None or r.app == app]

    # --- small typed writes -----------------------------------------------------------------------

    def set_cordon(self, host: str, record: CordonRecord | None) -> None:
        if record is None:
            self.delete(self.keys.cordon(host))
        else:
            self.put(self.keys.cordon(host), record.to_json())

    def register_host(self, record: HostRecord, lease: int) -> None:
        """What an agent does (here for tests and tools; the agent has its own client)."""
        self.put(self.keys.host(record.name), record.to_json(), lease=lease)

    def put_status(self, status: ContainerStatus, lease: int = 0) -> None:
        """What an agent does (here for tests and tools)."""
        key = self.keys.status(status.host, status.app, status.service, status.replica)
        self.put(key, status.to_json(), lease=lease)


def _etcd_message(e: etcd_exc.Etcd3Exception) -> str:
    """etcd's own words ("etcdserver: too many operations in txn request"), else the HTTP reason."""
    detail = e.detail_text or ""
    with contextlib.suppress(ValueError, AttributeError):
        detail = json.loads(detail).get("error") or detail
    text = " ".join([str(detail)] + [str(a) for a in e.args if a]) if detail else " ".join(str(a) for a in e.args)
    return text.strip()[:300] or type(e).__name__


def _too_big(e: StoreError) -> bool:
    text = str(e)
    return "too many operations" in text or "request is too large" in text


def retry_conflicts(fn: Any, attempts: int = 5, delay: float = 0.05) -> Any:
    """Call ``fn()`` again (a bounded number of times) when it loses an optimistic-concurrency race."""
    for i in range(attempts):
        try:
            return fn()
        except ConflictError:
            if i == attempts - 1:
                raise
            time.sleep(delay * (i + 1))
    raise AssertionError("unreachable")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
