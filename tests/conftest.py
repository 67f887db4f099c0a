"""Test-suite wide rules.

Skips are loud: every skipped test is listed at the end (``-ra``), and under CI (``CI`` set) or
``FUSION_NO_SKIP=1`` a skip is turned into a failure, because a skipped test proves nothing.
"""

from __future__ import annotations

import os

import pytest

STRICT = bool(os.environ.get("CI") or os.environ.get("FUSION_NO_SKIP"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"this test could not run, and under CI that is a failure: {reason}"
