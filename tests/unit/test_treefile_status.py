"""Parsers of ostree's output (recorded from ostree 2022.7) and rpm-ostree-style rendering."""

from __future__ import annotations

from dataclasses import replace

import pytest

from host.tree.bootconfig import parse_entry
from host.tree.status import (
    Deployment,
    Origin,
    mark_roles,
    parse_admin_status,
    parse_config_diff,
    parse_keyfile,
    parse_log,
    parse_metadata_value,
    parse_origin,
    parse_show,
    render_origin,
    render_status,
)
from specs.errors import FusionError

A = "3493b63a070b9c34abf1829297688d129640fbeae86ef839862b52348a0e06f9"
B = "72b877c069e057f6b608dbaf4bda3a46444b37573a8ea2a76340f7d8f6eea606"
C = "c3581f6131660543e8aa755a2cafba7ac457837330d25d0bc532e31173a314a7"

# recorded: `ostree admin --sysroot=SYSROOT status` on an offline sysroot after `ostree admin pin 1`
OFFLINE = f"""  fusion {A}.0
    Version: 4
    origin refspec: origin:test/x86_64/base
  fusion {B}.0
    Version: 3
    Pinned: yes
    origin refspec: origin:test/x86_64/base
"""

# the same format on a booted host with an upgrade waiting (ostree marks booted with '*')
BOOTED = f"""  fusion {A}.0 (pending)
    Version: 5
    origin refspec: origin:fusion/trixie/x86_64/host
* fusion {B}.1
    Version: 4
    origin refspec: origin:fusion/trixie/x86_64/host
  fusion {C}.0 (rollback)
    Version: 3
    Pinned: yes
    Unlocked: development
    origin: <unknown origin type>
"""

SHOW = f"""commit {A}
Parent:  {B}
ContentChecksum:  7ae21847a2cb2866c676a6895df611bd21bb1b3075d98dd5dd9a8faffa35f9fb
Date:  2026-11-23 09:34:02 +0000
Version: 4
(no subject)

"""

LOG = SHOW + f"""commit {B}
Parent:  {C}
ContentChecksum:  3f3983ac259665b73c733d7f4b754ed151db7f4369ac813c8f321bf87ea8b873
Date:  2026-11-23 09:34:01 +0000
Version: 3

    Fusion tree fusion/test 3

commit {C}
ContentChecksum:  995c8e088e2ae3ad501ec328d273b72fc4eb7981d7da0d15fc6eb8274a9ec4ff
Date:  2026-11-23 09:33:57 +0000
(no subject)

<< History beyond this commit not fetched >>
"""


def test_offline_status():
    deps = parse_admin_status(OFFLINE)
    assert [(d.index, d.checksum, d.serial, d.version, d.pinned, d.booted) for d in deps] == [
        (0, A, 0, "4", False, False), (1, B, 0, "3", True, False)]
    assert deps[0].default and not deps[1].default
    assert deps[0].origin == "origin:test/x86_64/base"
    assert deps[0].id == f"fusion-{A}.0"


def test_booted_status_markers():
    deps = parse_admin_status(BOOTED)
    assert [d.booted for d in deps] == [False, True, False]
    assert deps[0].pending and deps[2].rollback and deps[1].serial == 1
    assert deps[2].unlocked == "development" and deps[2].pinned
    assert deps[2].origin is None


def test_empty_status():
    assert parse_admin_status("") == []
    assert parse_admin_status("No deployments.\n") == []


def test_mark_roles():
    base = [Deployment(index=i, osname="fusion", checksum=c, serial=0) for i, c in enumerate((A, B, C))]
    offline = mark_roles(base)
    assert [(d.default, d.pending, d.rollback) for d in offline] == [
        (True, False, False), (False, False, True), (False, False, False)]
    booted_pending = mark_roles([base[0], replace(base[1], booted=True), base[2]])
    assert [(d.pending, d.rollback) for d in booted_pending] == [(True, False), (False, False), (False, True)]
    booted_first = mark_roles([replace(base[0], booted=True), base[1], base[2]])
    assert [(d.pending, d.rollback) for d in booted_first] == [(False, False), (False, True), (False, False)]
    assert mark_roles([]) == []


def test_show_and_log():
    info = parse_show(SHOW)
    assert info.checksum == A and info.parent == B and info.version == "4"
    assert info.timestamp == 1795426442 and info.content.startswith("7ae218")
    log = parse_log(LOG)
    assert [c.checksum for c in log] == [A, B, C]
    assert [c.version for c in log] == ["4", "3", None]
    assert log[1].subject == "Fusion tree fusion/test 3" and log[2].parent is None


def test_metadata_value():
    assert parse_metadata_value("'4'\n") == "4"
    assert parse_metadata_value("'a=1 b=2:1.0~rc1'\n") == "a=1 b=2:1.0~rc1"
    assert parse_metadata_value("'it\\'s'") == "it's"


def test_origin_round_trip():
    text = ("[origin]\nrefspec=origin:fusion/x\noverride-commit=" + A +
            "\n\n[fusion]\nbase-checksum=" + B + "\nlayered-packages=extra;tool;\n")
    o = parse_origin(text)
    assert o == Origin(refspec="origin:fusion/x", override_commit=A, base_checksum=B, layered=("extra", "tool"))
    assert o.remote == "origin" and o.ref == "fusion/x"
    assert parse_origin(render_origin(o)) == o
    assert parse_origin("[origin]\nrefspec=fusion/local\n").remote is None


def test_origin_keyfile_as_glib_reads_it():
    # what ostree writes after `ostree admin pin` / unlock --hotfix: other groups and keys are kept apart
    text = ("# written by ostree\n[origin]\nrefspec = origin:fusion/x\nunlocked=hotfix\n\n"
            "[libostree-transient]\npinned=true\n[origin]\noverride-commit=" + A + "\n")
    assert parse_keyfile(text) == {("origin", "refspec"): "origin:fusion/x", ("origin", "unlocked"): "hotfix",
                                   ("libostree-transient", "pinned"): "true", ("origin", "override-commit"): A}
    assert parse_origin(text) == Origin(refspec="origin:fusion/x", override_commit=A)
    assert parse_origin("") == Origin(refspec=None)
    for bad in ("refspec=x\n", "[origin]\nno equals sign\n", "[origin]\n=value\n"):
        with pytest.raises(FusionError, match="unreadable deployment origin: line"):
            parse_origin(bad)


def test_config_diff():
    text = "M    hello.conf\nA    added/dir/x.conf\nD    gone.conf\n"
    assert parse_config_diff(text) == [("A", "/etc/added/dir/x.conf"), ("D", "/etc/gone.conf"),
                                       ("M", "/etc/hello.conf")]


def test_render_like_rpm_ostree():
    deps = mark_roles([replace(d, timestamp=1795426442) for d in parse_admin_status(BOOTED)])
    deps[0] = replace(deps[0], layered_packages=("extra",), base_checksum=C)
    text = render_status(deps, booted_host=True)
    lines = text.splitlines()
    assert lines[0] == "State: idle" and lines[1] == "Deployments:"
    assert lines[2] == "  origin:fusion/trixie/x86_64/host (pending)"
    assert "                  Version: 5 (2026-11-23T09:34:02Z)" in lines
    assert "          LayeredPackages: extra" in lines
    assert "● origin:fusion/trixie/x86_64/host" in lines
    assert "                   Pinned: yes" in lines
    offline = render_status(parse_admin_status(OFFLINE), booted_host=False)
    assert "not booted" in offline and "(default)" in offline and "●" not in offline
    assert "Deployments: none" in render_status([], booted_host=False)


def test_json_has_rpm_ostree_fields():
    d = parse_admin_status(BOOTED)[1].to_json()
    for key in ("id", "osname", "serial", "checksum", "base-checksum", "version", "timestamp", "origin",
                "booted", "staged", "pinned", "unlocked", "packages", "requested-local-packages"):
        assert key in d
    assert d["booted"] is True and d["base-checksum"] == B


# recorded: boot/loader/entries/ostree-2-fusion.conf of an offline sysroot after an upgrade
BOOT_ENTRY = """title Debian GNU/Linux 13 (trixie) bench-2 (ostree:0)
version 2
options ostree=/ostree/boot.0/fusion/e1efc6ed2c2fcfe9d5566768e4daaf0ab5069b9edd7dbff4a9c70aaa2ddae375/0
linux /ostree/fusion-e1efc6ed2c2fcfe9d5566768e4daaf0ab5069b9edd7dbff4a9c70aaa2ddae375/vmlinuz-0.0.0-fusion-placeholder
"""


def test_boot_entry():
    assert parse_entry(BOOT_ENTRY) == (
        2, "/ostree/boot.0/fusion/e1efc6ed2c2fcfe9d5566768e4daaf0ab5069b9edd7dbff4a9c70aaa2ddae375/0")
    assert parse_entry("title x\nversion 3\noptions quiet rw\n") is None  # not an ostree entry
    assert parse_entry(BOOT_ENTRY.replace("version 2", "version two")) is None
