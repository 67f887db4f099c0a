"""Treefile validation: strict keys, values, and file:line:col positions in errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from specs.errors import SpecErrors
from specs.treefile import TreeFile, load_treefile, parse_treefile

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "trees"


def errors(text: str) -> list[str]:
    with pytest.raises(SpecErrors) as e:
        parse_treefile(text, filename="t.yaml")
    return [str(x) for x in e.value.errors]


def test_minimal_defaults():
    tf = parse_treefile("ref: fusion/trixie/x86_64/host\n")
    assert tf.suite == "trixie" and tf.bootstrap == "debootstrap" and tf.osname == "fusion"
    assert tf.version is None and tf.install_fusion is True and tf.packages == ()


def test_full_example_and_aliases():
    tf = parse_treefile(
        "ref: a/b\nversion: 2\nlocal-packages: [x.deb]\ninstall-fusion: false\n"
        "files:\n  - path: /usr/local/bin/t\n    source: files/t\n    mode: \"0755\"\n"
        "units:\n  - name: web.service\n    content: \"[Service]\\n\"\nenable: [web.service]\n",
        base_dir="/srv/trees")
    assert tf.version == "2" and tf.local_packages == ("x.deb",) and not tf.install_fusion
    assert tf.files[0].mode == 0o755 and tf.resolve("files/t") == Path("/srv/trees/files/t")
    assert tf.units[0].name == "web.service" and tf.enable == ("web.service",)


@pytest.mark.parametrize("name", ["fusion-host.yaml", "busybox-test.yaml"])
def test_examples_load(name):
    tf = load_treefile(EXAMPLES / name)
    assert isinstance(tf, TreeFile)


def test_default_host_tree_has_what_hosts_need():
    tf = load_treefile(EXAMPLES / "fusion-host.yaml")
    for pkg in ("systemd", "systemd-sysv", "dbus", "podman", "crun", "nftables", "ostree", "python3",
                "python3-pydantic", "python3-yaml", "python3-click", "python3-rich"):
        assert pkg in tf.packages
    assert tf.suite == "trixie" and tf.install_fusion


@pytest.mark.parametrize(("text", "expected"), [
    ("ref: a/b\nbogus: 1\n", "t.yaml:2:1: bogus: unknown key"),
    ("ref: /abs\n", "t.yaml:1:1: ref: '/abs' is not an OSTree ref"),
    ("ref: a\npackages: [ok, Bad_Name]\n", "t.yaml:2:1: packages: 'Bad_Name' is not a Debian package name"),
    ("ref: a\npackages: [xy, xy]\n", "t.yaml:2:1: packages: listed twice: xy"),
    ("ref: a\nfiles:\n  - path: /var/lib/x\n    content: y\n", "t.yaml:3:5: files[0].path: /var is not part"),
    ("ref: a\nfiles:\n  - path: relative\n    content: y\n", "t.yaml:3:5: files[0].path: must be an absolute"),
    ("ref: a\nfiles:\n  - path: /etc/x\n", "t.yaml:3:5: files[0]: give exactly one of 'content' or 'source'"),
    ("ref: a\nfiles:\n  - path: /etc/x\n    content: y\n    mode: 99999\n", "t.yaml:3:5: files[0]: mode out of range"),
    ("ref: a\nfiles:\n  - path: /etc/x\n    content: y\n    mode: \"rwx\"\n", "t.yaml:5:5: files[0].mode: must be an octal"),
    ("ref: a\nunits:\n  - name: web\n    content: x\n", "t.yaml:3:5: units[0].name: 'web' is not a systemd unit name"),
    ("ref: a\nenable: [nope]\n", "t.yaml:2:1: enable: 'nope' is not a systemd unit name"),
    ("ref: a\nbootstrap: busybox\npackages: [xy]\n", "t.yaml:1:1: 'packages' needs 'bootstrap: debootstrap'"),
    ("ref: a\nbootstrap: alpine\n", "t.yaml:2:1: bootstrap: Input should be 'debootstrap' or 'busybox'"),
    ("ref: a\nmirror: ftp://x\n", "t.yaml:2:1: mirror: must be an http(s):// or file:// URL"),
    ("ref: a\nlocal-packages: [x.rpm]\n", "t.yaml:2:1: local-packages: 'x.rpm' is not a .deb file"),
    ("ref: a\nversion: 'has space'\n", "t.yaml:2:1: version: 'has space' is not a version"),
    ("ref: a\nbase_dir: /x\n", "t.yaml:2:1: base_dir: unknown key"),
    ("- just\n- a list\n", "t.yaml:1: a treefile is a YAML mapping"),
    ("ref: [unclosed\n", "t.yaml:2:1: not valid YAML"),
])
def test_errors_name_file_line_and_key(text, expected):
    assert any(e.startswith(expected) for e in errors(text)), errors(text)


def test_missing_ref_and_several_errors_at_once():
    errs = errors("packages: [A]\nsuite: Trixie\n")
    assert "t.yaml:1:1: ref: Field required" in errs
    assert any(e.startswith("t.yaml:1:1: packages:") for e in errs)
    assert any(e.startswith("t.yaml:2:1: suite:") for e in errs)


def test_unreadable_file(tmp_path):
    with pytest.raises(SpecErrors, match="cannot read treefile"):
        load_treefile(tmp_path / "missing.yaml")
