"""Maintenance windows: ``"Sat,Sun 02:00-05:00 Europe/Berlin"`` (pure, no clock, no I/O).

Grammar: ``[DAYS] HH:MM-HH:MM [ZONE]``.

- ``DAYS``: comma-separated days or day ranges (``Mon``, ``Sat,Sun``, ``Mon-Fri``, ``Fri-Mon``);
  absent means every day. A day names the day the window *opens* on, so ``Fri 22:00-02:00`` runs
  from Friday 22:00 to Saturday 02:00.
- ``HH:MM-HH:MM``: wall-clock times; an end at or before the start crosses midnight
  (``00:00-00:00`` is the whole day).
- ``ZONE``: an IANA time zone (``zoneinfo``), default ``UTC``.

Times are wall-clock times in the zone, so windows follow daylight saving time: on the day clocks
spring forward over 02:00-03:00, ``02:00-05:00`` opens at 03:00; on the day they fall back, a
wall-clock time that occurs twice is inside the window both times.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from specs.errors import InputError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_RANGE = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")
EXAMPLE = 'e.g. --window "Sat,Sun 02:00-05:00 Europe/Berlin"'


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday .. 6 = Sunday: the days the window opens on
    start: time
    end: time
    zone: str
    text: str = ""

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start


def _day(token: str, text: str) -> int:
    t = token.strip().lower()
    if t in DAY_NAMES:
        return DAY_NAMES.index(t)
    if t in _FULL:
        return _FULL.index(t)
    raise InputError(f"bad day {token!r} in window {text!r}", hint=f"days are Mon..Sun; {EXAMPLE}")


def _days(part: str, text: str) -> frozenset[int]:
    out: set[int] = set()
    for item in part.split(","):
        if not item.strip():
            raise InputError(f"empty day in {part!r} in window {text!r}", hint=EXAMPLE)
        if "-" in item:
            a, _, b = item.partition("-")
            first, last = _day(a, text), _day(b, text)
            out.update((first + i) % 7 for i in range((last - first) % 7 + 1))
        else:
            out.add(_day(item, text))
    return frozenset(out)


def _time(h: str, m: str, part: str, text: str) -> time:
    hour, minute = int(h), int(m)
    if hour > 23 or minute > 59:
        raise InputError(f"bad time in {part!r} in window {text!r}", hint="times are HH:MM, 00:00 to 23:59")
    return time(hour, minute)


def parse(text: str) -> Window:
    """Parse a window; InputError naming the bad part."""
    tokens = text.split()
    ranges = [i for i, t in enumerate(tokens) if _RANGE.match(t)]
    if len(ranges) != 1:
        what = "no time range HH:MM-HH:MM" if not ranges else "more than one time range"
        raise InputError(f"{what} in window {text!r}", hint=EXAMPLE)
    i = ranges[0]
    if i > 1:
        raise InputError(f"unexpected {' '.join(tokens[1:i])!r} before the time range in window {text!r}",
                         hint=EXAMPLE)
    if len(tokens) - i > 2:
        raise InputError(f"unexpected {' '.join(tokens[i + 2:])!r} after the time zone in window {text!r}",
                         hint=EXAMPLE)
    days = _days(tokens[0], text) if i == 1 else frozenset(range(7))
    m = _RANGE.match(tokens[i])
    assert m is not None
    start = _time(m.group(1), m.group(2), tokens[i], text)
    end = _time(m.group(3), m.group(4), tokens[i], text)
    zone = tokens[i + 1] if len(tokens) > i + 1 else "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise InputError(f"unknown time zone {zone!r} in window {text!r}", hint="use an IANA name like Europe/Berlin") from e
    return Window(days=days, start=start, end=end, zone=zone, text=text)


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("window times must be timezone-aware datetimes")
    return now


def allows(window: Window, now: datetime) -> bool:
    """Whether ``now`` (timezone-aware) is inside the window."""
    local = _aware(now).astimezone(ZoneInfo(window.zone))
    wall, day = local.time().replace(tzinfo=None), local.weekday()
    if not window.crosses_midnight:
        return day in window.days and window.start <= wall < window.end
    if day in window.days and wall >= window.start:
        return True
    return (day - 1) % 7 in window.days and wall < window.end


def next_open(window: Window, now: datetime) -> datetime:
    """The first instant at or after ``now`` inside the window (``now`` itself when open), in UTC.

    Every opening of a window happens on a whole minute (window times are HH:MM and time zone
    offsets are whole minutes), so scanning minute boundaries (at most 8 days) is exact."""
    now = _aware(now).astimezone(UTC)
    if allows(window, now):
        return now
    t = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for _ in range(8 * 24 * 60 + 1):
        if allows(window, t):
            return t
        t += timedelta(minutes=1)
    raise ValueError(f"window {window.text!r} never opens")  # unreachable: days is never empty
