"""Package lists: metadata encoding, dpkg-query parsing, rpm-ostree-style diffs, version order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from host.tree.compose import auto_version
from host.tree.packages import decode, diff, encode, inventory_text, parse_dpkg_query

# recorded: dpkg-query --admindir=ROOT/var/lib/dpkg -W -f '${Package}\t${Version}\t${db:Status-Abbrev}\n'
DPKG = "apt\t3.0.3\tii \nbash\t5.2.37-2+b5\tii \nlibc6:amd64\t2.41-12\tii \nold-conf\t1.0\trc \nless\t668-1\tii \n"

names = st.from_regex(r"[a-z0-9][a-z0-9+.-]{1,20}", fullmatch=True)
versions = st.from_regex(r"([0-9]:)?[0-9][A-Za-z0-9.+~-]{0,12}", fullmatch=True)


def test_parse_dpkg_query_keeps_installed_only():
    assert parse_dpkg_query(DPKG) == {"apt": "3.0.3", "bash": "5.2.37-2+b5", "libc6": "2.41-12", "less": "668-1"}
    assert parse_dpkg_query("x\t1\n") == {"x": "1"}


@given(st.dictionaries(names, versions, max_size=30))
def test_encode_round_trip(packages):
    assert decode(encode(packages)) == packages
    assert decode("'" + encode(packages) + "'") == packages


def test_inventory_is_sorted_and_parses_back():
    from host.tree.packages import parse_inventory

    assert inventory_text({"b": "2", "a": "1"}) == "a 1\nb 2\n"
    assert parse_inventory(inventory_text({"b": "2:1.0~rc1", "a": "1"})) == {"b": "2:1.0~rc1", "a": "1"}


def test_diff_lines_like_rpm_ostree():
    d = diff({"hello": "1.0", "gone": "3", "same": "1", "libc6": "2.41-12"},
             {"hello": "1.1", "new": "0.1", "same": "1", "libc6": "2.41-10"})
    assert d.lines() == ["Upgraded:", "  hello 1.0 -> 1.1", "Downgraded:", "  libc6 2.41-12 -> 2.41-10",
                         "Removed:", "  gone-3", "Added:", "  new-0.1"]
    assert d.to_json()["added"] == [{"name": "new", "version": "0.1"}]
    assert diff({"a": "1"}, {"a": "1"}).empty


def test_debian_version_order():
    def up(a: str, b: str) -> bool:
        return diff({"p": a}, {"p": b}).upgraded != []

    assert up("1.0", "1.1") and up("1.9", "1.10") and up("1.0~rc1", "1.0") and up("1:0.1", "2:0.0")
    assert up("2.41-9", "2.41-10") and not up("1.1", "1.0")
    assert up("1.0", "1.0a") and up("1.0-1", "1.0-1+b1") and up("1.0+dfsg", "1.0.1")


@given(versions, versions)
def test_version_order_agrees_with_dpkg_on_samples(a, b):
    from host.tree.packages import compare_versions

    assert (compare_versions(a, b) > 0) == (compare_versions(b, a) < 0)


def test_auto_version():
    from datetime import UTC, datetime

    now = datetime(2026, 11, 23, tzinfo=UTC)
    assert auto_version(None, now) == "20261123.0"
    assert auto_version("20261123.4", now) == "20261123.5"
    assert auto_version("20261122.9", now) == "20261123.0"
    assert auto_version("7", now) == "20261123.0"
