"""The prober: counts answers right, keeps its schedule, stops when told, never overruns.

The server under probe is a small HTTP server on loopback started by the tests (port 0).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lab.prober import MAX_FAILURES, Outcome, Prober, percentile, probe, report


class Server:
    """Answers 200, except every ``fail_every``-th request (500); ``/slow`` sleeps ``slow`` seconds first."""

    def __init__(self, fail_every: int = 0, slow: float = 0.0) -> None:
        self.hits = 0
        lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with lock:
                    server.hits += 1
                    n = server.hits
                if self.path.startswith("/slow") and n == 1:
                    time.sleep(slow)
                failing = fail_every and n % fail_every == 0
                body = b"broken on purpose\nsecond line\n" if failing else b"ok\n"
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("X-Fusion-Backend", f"b{n % 2}:80")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


@pytest.fixture
def flaky() -> Iterator[Server]:
    s = Server(fail_every=3)
    yield s
    s.close()


def test_counts_ok_and_failed(flaky: Server) -> None:
    r = probe(flaky.url + "/", rate=40, duration=0.3)
    assert (r.sent, r.ok, r.failed) == (12, 8, 4) and flaky.hits == 12
    assert len(r.failures) == 4
    assert all(f.startswith("t=") and f.endswith("s: HTTP 500: broken on purpose") for f in r.failures)
    assert r.backends == {"b0:80": 6, "b1:80": 6}
    assert 0 < r.p50_ms <= r.p99_ms


def test_keeps_the_rate(server: Server) -> None:
    t0 = time.monotonic()
    r = probe(server.url, rate=50, duration=0.5)
    elapsed = time.monotonic() - t0
    assert 23 <= r.sent <= 27 and r.ok == r.sent and r.failed == 0 and r.failures == []
    assert 0.4 <= elapsed < 1.0


def test_a_slow_request_does_not_delay_the_schedule() -> None:
    s = Server(slow=0.4)
    try:
        t0 = time.monotonic()
        r = probe(s.url + "/slow", rate=20, duration=0.5)
        assert (r.sent, r.ok) == (10, 10) and time.monotonic() - t0 < 0.9
        assert r.p99_ms >= 350
    finally:
        s.close()


def test_a_hanging_request_fails_and_the_probe_ends_on_time() -> None:
    s = Server(slow=1.0)
    try:
        t0 = time.monotonic()
        r = probe(s.url + "/slow", rate=10, duration=0.2, timeout=0.2)
        assert time.monotonic() - t0 < 0.7
        assert (r.sent, r.ok, r.failed) == (2, 1, 1)
        assert "TimeoutError" in r.failures[0] or "timed out" in r.failures[0]
    finally:
        s.close()


def test_refused_connections_are_failures() -> None:
    s = Server()
    url = s.url
    s.close()
    r = probe(url, rate=20, duration=0.1)
    assert (r.sent, r.ok, r.failed) == (2, 0, 2) and "ConnectionRefusedError" in r.failures[0]


def test_stop_ends_the_schedule_early(server: Server) -> None:
    t0 = time.monotonic()
    prober = Prober(server.url, rate=20, duration=30).start()
    time.sleep(0.3)
    r = prober.stop()
    assert time.monotonic() - t0 < 1.0
    assert 4 <= r.sent <= 10 and r.ok == r.sent == server.hits


def test_stop_callable_of_probe(server: Server) -> None:
    t0 = time.monotonic()
    r = probe(server.url, rate=100, duration=30, stop=lambda: time.monotonic() - t0 > 0.1)
    assert 5 <= r.sent <= 15 and r.ok == r.sent


def test_report_json_and_summary() -> None:
    outcomes = [Outcome(i / 10, i % 2 == 0, float(i), "" if i % 2 == 0 else "HTTP 502: x", "h:1")
                for i in range(50)]
    r = report(outcomes, sent=51, duration=3.0)
    assert (r.sent, r.ok, r.failed) == (51, 25, 26)
    assert len(r.failures) == MAX_FAILURES and r.failures[0] == "t=0.1s: HTTP 502: x"
    assert r.failures[-1] == "1 request(s) had no answer when the probe stopped"
    data = json.loads(r.to_json())
    assert data["backends"] == {"h:1": 50} and data["p50_ms"] == 24.0 and data["p99_ms"] == 49.0
    assert r.summary() == "sent 51, ok 25, failed 26 in 3.0s; p50 24.0 ms, p99 49.0 ms; h:1 50"


def test_a_request_without_an_answer_is_named() -> None:
    r = report([], sent=2, duration=1.0)
    assert r.failed == 2 and r.failures == ["2 request(s) had no answer when the probe stopped"]


def test_percentile() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0
    assert percentile([5.0], 99) == 5.0
