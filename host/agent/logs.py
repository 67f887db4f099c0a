"""Answering ``fusion logs`` requests: journal lines of one container unit, as LogChunk keys in etcd.

Side effects: ``journalctl`` (through :mod:`common.runner`), etcd puts, one thread per followed
request. A plain request gets one chunk (``done: true``). A ``follow`` request gets the last lines,
then new ones as the journal grows (chunks batched every ~0.3 s), until its request key disappears
(the CLI went away: its lease expired or it deleted the key) or the chunks cannot be written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

from pydantic import ValidationError

from common.runner import spawn
from common.store import KV, Store, StoreError
from host.agent.systemd import Systemd
from specs.cluster import LogChunk, LogRequest

log = logging.getLogger("fusion-agent")

BATCH_SECONDS = 0.3
BATCH_LINES = 200


@dataclass
class Follower:
    """One ``journalctl -f`` feeding one request's chunks."""

    store: Store
    key_of: str  # the request id
    host: str
    lease: int
    proc: subprocess.Popen[bytes]
    seq: int = 1
    stopped: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._pump, name=f"logs-{self.key_of}", daemon=True)
        self.thread.start()

    def _put(self, lines: list[str]) -> bool:
        key = self.store.keys.log_chunk(self.host, self.key_of, self.seq)
        try:
            self.store.put(key, LogChunk(lines=lines, done=False).to_json(), lease=self.lease)
        except StoreError as e:  # e.g. the request's lease is gone
            log.info("log request %s: stop following (%s)", self.key_of, e)
            return False
        self.seq += 1
        return True

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buf = b""
        lines: list[str] = []
        last = time.monotonic()
        while not self.stopped.is_set():
            ready, _, _ = select.select([fd], [], [], BATCH_SECONDS)
            if ready:
                data = os.read(fd, 65536)
                if not data:
                    break
                buf += data
                *done, buf = buf.split(b"\n")
                lines += [d.decode(errors="replace") for d in done]
            due = time.monotonic() - last >= BATCH_SECONDS or len(lines) >= BATCH_LINES
            if lines and due:
                if not self._put(lines):
                    break
                lines, last = [], time.monotonic()
        self.stopped.set()

    def stop(self) -> None:
        self.stopped.set()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        if self.thread is not None:
            self.thread.join(timeout=5)


@dataclass
class LogServer:
    store: Store
    systemd: Systemd
    host: str
    answered: set[str] = field(default_factory=set)
    followers: dict[str, Follower] = field(default_factory=dict)

    def serve(self) -> None:
        """Answer every new request under ``logs/<host>/``; stop following the ones that are gone."""
        prefix = self.store.keys.logs_prefix(self.host)
        kvs, _ = self.store.range(prefix)
        requests = {kv.key[len(prefix) :]: kv for kv in kvs if "/" not in kv.key[len(prefix) :]}
        for request_id in list(self.followers):
            if request_id not in requests or self.followers[request_id].stopped.is_set():
                self.followers.pop(request_id).stop()
        self.answered &= set(requests)
        for request_id, kv in requests.items():
            if request_id not in self.answered:
                self.answered.add(request_id)
                self._answer(request_id, kv)

    def _answer(self, request_id: str, kv: KV) -> None:
        chunk_key = self.store.keys.log_chunk(self.host, request_id, 1)
        try:
            req = LogRequest.model_validate_json(kv.value)
        except ValidationError as e:
            bad = LogChunk(done=True, error=f"bad request: {e.errors()[0]['msg']}")
            with contextlib.suppress(StoreError):
                self.store.put(chunk_key, bad.to_json(), lease=kv.lease)
            return
        if not req.follow:
            chunk = LogChunk(lines=self.systemd.journal(req.unit, req.lines), done=True)
            with contextlib.suppress(StoreError):
                self.store.put(chunk_key, chunk.to_json(), lease=req.lease)
            return
        proc = spawn(
            ["journalctl", "--no-pager", "-o", "cat", "-f", "-u", req.unit, "-n", str(req.lines)],
            stdout=subprocess.PIPE,
            new_session=True,
        )
        follower = Follower(self.store, request_id, self.host, req.lease, proc)
        follower.start()
        self.followers[request_id] = follower

    def close(self) -> None:
        for f in self.followers.values():
            f.stop()
        self.followers.clear()
