"""A bounded HTTP load generator: did any request fail while the cluster was being changed?

:func:`probe` sends GETs on a fixed schedule (``rate`` per second, one per tick) for ``duration``
seconds and reports how many were answered with 200, which failed and how (the first few, with the
time they were due), how the requests were spread over backends (from the front door's
``X-Fusion-Backend`` header), and latency percentiles. Each request runs in a small thread pool,
so a slow one does not delay the schedule; every request uses a new connection, like a new client.
:class:`Prober` runs the same in a background thread until told to stop.

Side effects: HTTP requests to the given URL, and threads (joined before returning, except that a
request still hanging at the hard stop, ``duration + timeout``, is abandoned to its socket timeout).
"""

from __future__ import annotations

import http.client
import json
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from urllib.parse import urlsplit

from specs.errors import InputError

BACKEND_HEADER = "X-Fusion-Backend"
MAX_FAILURES = 20  # failure lines a report keeps
MAX_WORKERS = 64


@dataclass(frozen=True)
class Outcome:
    """One request: when it was due (seconds after the start), and how it went."""

    due: float
    ok: bool
    latency_ms: float
    error: str = ""
    backend: str | None = None


@dataclass(frozen=True)
class ProbeReport:
    sent: int
    ok: int
    failed: int
    failures: list[str] = field(default_factory=list)  # the first MAX_FAILURES, "t=12.3s: <error>"
    backends: dict[str, int] = field(default_factory=dict)  # answers per X-Fusion-Backend
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    duration: float = 0.0  # seconds from the first tick to the last answer

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def summary(self) -> str:
        spread = ", ".join(f"{b} {n}" for b, n in sorted(self.backends.items())) or "no backend header"
        return (f"sent {self.sent}, ok {self.ok}, failed {self.failed} in {self.duration:.1f}s; "
                f"p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms; {spread}")


# --- pure ------------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def report(outcomes: list[Outcome], sent: int, duration: float) -> ProbeReport:
    """Sum up ``outcomes``; requests sent but without an outcome count as failed."""
    ok = sum(1 for o in outcomes if o.ok)
    failures = [f"t={o.due:.1f}s: {o.error}" for o in sorted(outcomes, key=lambda o: o.due) if not o.ok]
    missing = sent - len(outcomes)
    if missing > 0:  # always told, in the last line
        failures = failures[:MAX_FAILURES - 1] + [f"{missing} request(s) had no answer when the probe stopped"]
    latencies = [o.latency_ms for o in outcomes]
    return ProbeReport(
        sent=sent, ok=ok, failed=sent - ok, failures=failures[:MAX_FAILURES],
        backends=dict(sorted(Counter(o.backend for o in outcomes if o.backend).items())),
        p50_ms=round(percentile(latencies, 50), 2), p99_ms=round(percentile(latencies, 99), 2),
        duration=round(duration, 3),
    )


# --- side effects ----------------------------------------------------------------------------------


def _target(url: str) -> tuple[type[http.client.HTTPConnection], str, int | None, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"bad URL {url!r}", hint="write http://HOST[:PORT]/PATH")
    conn = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return conn, parts.hostname, parts.port, path


def _one(url: str, due: float, timeout: float) -> Outcome:
    conn_type, host, port, path = _target(url)
    t0 = time.monotonic()
    conn = conn_type(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        body = resp.read()
        ms = (time.monotonic() - t0) * 1000
        backend = resp.getheader(BACKEND_HEADER)
        if resp.status == 200:
            return Outcome(due, True, ms, backend=backend)
        first = body.decode(errors="replace").strip().splitlines()[:1]
        return Outcome(due, False, ms, f"HTTP {resp.status}" + (f": {first[0][:200]}" if first else ""), backend)
    except (OSError, http.client.HTTPException) as e:
        text = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        return Outcome(due, False, (time.monotonic() - t0) * 1000, text)
    finally:
        conn.close()


def probe(url: str, rate: float, duration: float, timeout: float = 2.0,
          stop: Callable[[], bool] | None = None) -> ProbeReport:
    """GET ``url`` ``rate`` times a second for ``duration`` seconds (at most ``rate * duration`` requests).

    Ends early when ``stop()`` turns true (in-flight requests are still awaited); never runs longer
    than ``duration + timeout``.
    """
    if rate <= 0 or duration <= 0:
        raise InputError(f"probe needs a positive rate and duration, not {rate}/s for {duration}s")
    _target(url)  # a bad URL fails here, once
    total = int(rate * duration + 1e-9)
    workers = max(2, min(MAX_WORKERS, math.ceil(rate * timeout) + 1))
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def run(due: float) -> None:
        outcome = _one(url, due, timeout)
        with lock:
            outcomes.append(outcome)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probe")
    futures = []
    t0 = time.monotonic()
    hard_stop = t0 + duration + timeout
    try:
        for i in range(total):
            due = i / rate
            if not _wait_until(t0 + due, stop) or time.monotonic() >= hard_stop:
                break
            futures.append(pool.submit(run, due))
        wait(futures, timeout=max(0.0, hard_stop - time.monotonic()))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    with lock:
        done = list(outcomes)
    return report(done, len(futures), time.monotonic() - t0)


def _wait_until(when: float, stop: Callable[[], bool] | None, step: float = 0.05) -> bool:
    """Sleep until monotonic time ``when``; False as soon as ``stop()`` is true."""
    while True:
        if stop is not None and stop():
            return False
        left = when - time.monotonic()
        if left <= 0:
            return True
        time.sleep(min(left, step))


class Prober:
    """:func:`probe` in a background thread: ``start()`` it, change the cluster, ``stop()`` for the report."""

    def __init__(self, url: str, rate: float = 10.0, duration: float = 3600.0, timeout: float = 2.0) -> None:
        self.url, self.rate, self.duration, self.timeout = url, rate, duration, timeout
        self._stop = threading.Event()
        self._report: ProbeReport | None = None
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Prober:
        _target(self.url)
        self._thread = threading.Thread(target=self._run, name="prober", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._report = probe(self.url, self.rate, self.duration, self.timeout, stop=self._stop.is_set)
        except BaseException as e:  # handed to stop()'s caller
            self._error = e

    def stop(self) -> ProbeReport:
        """End the schedule now, wait for the requests in flight, and return the report."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        if self._report is None:
            raise RuntimeError("Prober.stop() before start()")
        return self._report

    def __enter__(self) -> Prober:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
