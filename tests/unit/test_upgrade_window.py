"""Maintenance windows: parsing, membership across midnight and DST, next opening."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.upgrade.window import allows, next_open, parse
from specs.errors import InputError

BERLIN = ZoneInfo("Europe/Berlin")


def b(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=BERLIN)


def test_parse_forms() -> None:
    w = parse("Sat,Sun 02:00-05:00 Europe/Berlin")
    assert w.days == {5, 6} and w.zone == "Europe/Berlin" and not w.crosses_midnight
    assert parse("02:00-05:00").days == set(range(7)) and parse("02:00-05:00").zone == "UTC"
    assert parse("Mon-Fri 22:00-02:00 UTC").days == {0, 1, 2, 3, 4}
    assert parse("Fri-Mon 01:00-02:00").days == {4, 5, 6, 0}
    assert parse("saturday,Sun 1:00-2:00").days == {5, 6}
    assert parse("Mon 22:00-02:00").crosses_midnight


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ("Sat,Sum 02:00-05:00", "'Sum'"),
        ("Sat 25:00-05:00", "25:00-05:00"),
        ("Sat 02:00-05:00 Mars/Olympus", "'Mars/Olympus'"),
        ("Sat 02:00", "no time range"),
        ("", "no time range"),
        ("Sat 02:00-03:00 04:00-05:00", "more than one"),
        ("Sat Sun 02:00-05:00", "'Sun'"),
        ("02:00-05:00 UTC extra", "'extra'"),
        ("Sat,,Sun 02:00-05:00", "empty day"),
    ],
)
def test_parse_errors_name_the_bad_part(text: str, bad: str) -> None:
    with pytest.raises(InputError, match=bad.replace("(", r"\(")) as e:
        parse(text)
    assert e.value.exit_code == 2


W = parse("Sat,Sun 02:00-05:00 Europe/Berlin")
NIGHT = parse("Fri 22:00-02:00 Europe/Berlin")  # Friday 22:00 to Saturday 02:00


@pytest.mark.parametrize(
    ("window", "now", "expected"),
    [
        (W, b(2026, 11, 28, 2, 0), True),  # Saturday 02:00 (start is inside)
        (W, b(2026, 11, 28, 4, 59), True),
        (W, b(2026, 11, 28, 5, 0), False),  # end is outside
        (W, b(2026, 11, 28, 1, 59), False),
        (W, b(2026, 11, 27, 3, 0), False),  # Friday
        (W, b(2026, 11, 30, 3, 0), False),  # Monday
        (W, datetime(2026, 11, 28, 1, 30, tzinfo=UTC), True),  # 02:30 in Berlin (CET, +1)
        (W, datetime(2026, 7, 4, 1, 30, tzinfo=UTC), True),  # 03:30 in Berlin (CEST, +2)
        (W, datetime(2026, 7, 4, 3, 30, tzinfo=UTC), False),  # 05:30 CEST
        (NIGHT, b(2026, 11, 27, 23, 0), True),  # Friday night
        (NIGHT, b(2026, 11, 28, 1, 59), True),  # Saturday early: the Friday window still runs
        (NIGHT, b(2026, 11, 28, 2, 0), False),
        (NIGHT, b(2026, 11, 27, 1, 0), False),  # Friday early: Thursday has no window
        (NIGHT, b(2026, 11, 28, 23, 0), False),  # Saturday night
        # DST spring forward (Sun 2026-03-29, 02:00 CET -> 03:00 CEST): 02:00-05:00 opens at 03:00
        (W, datetime(2026, 3, 29, 0, 59, tzinfo=UTC), False),  # 01:59 CET
        (W, datetime(2026, 3, 29, 1, 0, tzinfo=UTC), True),  # 03:00 CEST
        (W, datetime(2026, 3, 29, 2, 59, tzinfo=UTC), True),  # 04:59 CEST
        (W, datetime(2026, 3, 29, 3, 0, tzinfo=UTC), False),  # 05:00 CEST
        # DST fall back (Sun 2026-10-25, 03:00 CEST -> 02:00 CET): 02:00-05:00 lasts 4 real hours
        (W, datetime(2026, 10, 25, 0, 0, tzinfo=UTC), True),  # 02:00 CEST (first)
        (W, datetime(2026, 10, 25, 3, 59, tzinfo=UTC), True),  # 04:59 CET
        (W, datetime(2026, 10, 25, 4, 0, tzinfo=UTC), False),  # 05:00 CET
    ],
)
def test_allows(window: object, now: datetime, expected: bool) -> None:
    assert allows(window, now) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("window", "now", "expected"),
    [
        (W, b(2026, 11, 28, 3, 0), b(2026, 11, 28, 3, 0)),  # open now: now
        (W, b(2026, 11, 23, 12, 0), b(2026, 11, 28, 2, 0)),  # Monday -> Saturday 02:00
        (W, b(2026, 11, 28, 6, 0), b(2026, 11, 29, 2, 0)),  # Saturday after -> Sunday
        (W, b(2026, 11, 29, 6, 0), b(2026, 12, 5, 2, 0)),  # Sunday after -> next Saturday
        (W, datetime(2026, 3, 28, 12, 0, tzinfo=UTC), datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),  # DST gap
        (NIGHT, b(2026, 11, 27, 12, 0, 30), b(2026, 11, 27, 22, 0)),
        (parse("23:30-00:30 UTC"), datetime(2026, 1, 1, 0, 30, tzinfo=UTC), datetime(2026, 1, 1, 23, 30, tzinfo=UTC)),
    ],
)
def test_next_open(window: object, now: datetime, expected: datetime) -> None:
    assert next_open(window, now) == expected  # type: ignore[arg-type]


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        allows(W, datetime(2026, 1, 1))


WINDOWS = [W, NIGHT, parse("Mon-Fri 01:30-02:30 America/New_York"), parse("00:00-00:00 Australia/Lord_Howe"),
           parse("Sun 02:15-02:45 Europe/Berlin"), parse("Wed 23:00-01:00 Asia/Kolkata")]


@settings(max_examples=40, deadline=None)
@given(
    window=st.sampled_from(WINDOWS),
    now=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)),
    fractions=st.lists(st.floats(min_value=0, max_value=1, exclude_max=True), max_size=20),
)
def test_next_open_is_the_first_allowed_instant(window: object, now: datetime, fractions: list[float]) -> None:
    opens = next_open(window, now)  # type: ignore[arg-type]
    assert opens >= now and allows(window, opens)  # type: ignore[arg-type]
    if opens == now:
        return
    span = (opens - now).total_seconds()
    for f in fractions:  # nothing in [now, opens) is allowed
        point = now + timedelta(seconds=span * f)
        if point < opens:  # (float rounding may land on opens itself)
            assert not allows(window, point)  # type: ignore[arg-type]
    assert not allows(window, opens - timedelta(microseconds=1))  # type: ignore[arg-type]
