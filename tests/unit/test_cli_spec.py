"""``fusion spec check`` and ``fusion units render``: every example passes; a broken copy of each
(bad key, bad port, dependency cycle) exits 2 with ``file:line`` errors and no traceback, both in
process (``cli.main.main``) and as the installed ``fusion`` command."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from cli.main import main
from common.runner import run

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
FUSION = Path(sys.executable).parent / "fusion"
ALL = ["guestbook.yaml", "three-tier.yaml", "geard.json", "quadlet"]

# (example, kind) -> list of (file inside the example, old text, new text)
BROKEN: dict[tuple[str, str], list[tuple[str, str, str]]] = {
    ("guestbook.yaml", "key"): [("", "  web:\n", "  web:\n    bogus_key: 1\n")],
    ("guestbook.yaml", "port"): [("", '"8080:8080"', '"99999:8080"')],
    ("guestbook.yaml", "cycle"): [("", "  redis:\n    image:", "  redis:\n    depends_on: [web]\n    image:")],
    ("three-tier.yaml", "key"): [("", "  proxy:\n", "  proxy:\n    bogus_key: 1\n")],
    ("three-tier.yaml", "port"): [("", '"80:8080"', '"80:99999"')],
    ("three-tier.yaml", "cycle"): [("", "  db:\n    image:", "  db:\n    depends_on: [proxy]\n    image:")],
    ("geard.json", "key"): [("", '"Name": "web",', '"Name": "web", "Bogus": 1,')],
    ("geard.json", "port"): [("", '"Internal": 8080', '"Internal": 99999')],
    # geard links are discovery, never start order, so geard cannot express a dependency cycle.
    ("quadlet", "key"): [("web.container", "ReadOnly=true\n", "ReadOnly=true\nBogusKey=1\n")],
    ("quadlet", "port"): [("web.container", "PublishPort=8080:8080", "PublishPort=99999:8080")],
    ("quadlet", "cycle"): [("db.container", "[Unit]\n", "[Unit]\nRequires=web.service\nAfter=web.service\n")],
}
# what each error must say, and the line it must name
EXPECT = {
    ("guestbook.yaml", "key"): ("bogus_key", 11),
    ("guestbook.yaml", "port"): ("65535", 17),
    ("guestbook.yaml", "cycle"): ("cycle", None),
    ("three-tier.yaml", "key"): ("bogus_key", 17),
    ("three-tier.yaml", "port"): ("65535", None),
    ("three-tier.yaml", "cycle"): ("cycle", None),
    ("geard.json", "key"): ("Bogus", 4),
    ("geard.json", "port"): ("65535", None),
    ("quadlet", "key"): ("unsupported: BogusKey", 27),
    ("quadlet", "port"): ("65535", 17),
    ("quadlet", "cycle"): ("dependency cycle", None),
}


def call(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def broken_copy(tmp_path: Path, example: str, kind: str) -> tuple[Path, Path]:
    """A copy of the example with one mistake; returns (what to check, the file that was changed)."""
    src = EXAMPLES / example
    tmp_path.mkdir(parents=True, exist_ok=True)
    dst = tmp_path / example
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy(src, dst)
    changed = dst
    for fname, old, new in BROKEN[(example, kind)]:
        target = dst / fname if fname else dst
        text = target.read_text()
        assert old in text, f"{example}: the text to break is gone: {old!r}"
        target.write_text(text.replace(old, new, 1))
        changed = target
    return dst, changed


@pytest.mark.parametrize("example", ALL)
def test_every_example_passes(example: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = call(["spec", "check", str(EXAMPLES / example)], capsys)
    assert code == 0, err
    doc = yaml.safe_load(out)
    assert doc["fusion"] == "v1" and doc["services"]
    code, out, err = call(["spec", "check", "--json", str(EXAMPLES / example)], capsys)
    assert code == 0 and json.loads(out)["services"]


def test_check_several_files_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = call(["spec", "check", "--json", *(str(EXAMPLES / e) for e in ALL)], capsys)
    assert code == 0
    assert [a["name"] for a in json.loads(out)] == ["guestbook", "three-tier", "geard", "quadlet"]


def test_quadlet_files_named_one_by_one_are_one_app(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(str(p) for p in (EXAMPLES / "quadlet").iterdir())
    code, out, err = call(["spec", "check", "--json", *files], capsys)
    assert code == 0, err
    assert sorted(json.loads(out)["services"]) == ["db", "exporter", "shipper", "web"]
    assert "share a network" in err  # the pod's warning


@pytest.mark.parametrize(("example", "kind"), sorted(BROKEN))
def test_broken_copy_exits_2_with_file_line(
    example: str, kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, changed = broken_copy(tmp_path, example, kind)
    code, out, err = call(["spec", "check", str(path)], capsys)
    assert code == 2
    assert "Traceback" not in err and out == ""
    words, line = EXPECT[(example, kind)]
    assert err.startswith("error: ")
    assert words in err
    assert f"{changed}:" in err
    if line is not None:
        assert f"{changed}:{line}:" in err


def test_units_render_writes_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "out"
    code, out, err = call(["units", "render", str(EXAMPLES / "guestbook.yaml"), "--out", str(out_dir)], capsys)
    assert code == 0, err
    assert (out_dir / "guestbook-web-1.service").is_file()
    assert (out_dir / "quadlet" / "guestbook-web-1.container").is_file()
    code, out, err = call(["units", "render", "--engine", "docker", "--json", str(EXAMPLES / "quadlet")], capsys)
    assert code == 0, err
    body = json.loads(out)
    assert "quadlet-web-1.service" in body["files"] and body["quadlet"] == {}
    code, out, _ = call(["units", "render", str(EXAMPLES / "three-tier.yaml"), "--podman-arg=--cgroups=disabled"], capsys)
    assert code == 0 and "--cgroups=disabled localhost:5000/fusion/app:1" in out


def test_units_render_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = broken_copy(tmp_path, "guestbook.yaml", "port")
    code, _, err = call(["units", "render", str(path)], capsys)
    assert code == 2 and "Traceback" not in err
    code, _, err = call(["units", "render", str(tmp_path / "missing.yaml")], capsys)
    assert code == 2 and "cannot read" in err


def test_installed_command(tmp_path: Path) -> None:
    """The real `fusion` executable: the examples pass; every broken copy, checked in one run (each
    file is its own app), is reported with its file:line, exit 2 and no traceback."""
    r = run([str(FUSION), "spec", "check", *(str(EXAMPLES / e) for e in ALL)], check=False)
    assert r.returncode == 0, r.stderr
    paths, changed = [], []
    for example, kind in sorted(BROKEN):
        path, file = broken_copy(tmp_path / f"{example}-{kind}", example, kind)
        paths.append(str(path))
        changed.append(file)
    r = run([str(FUSION), "spec", "check", *paths], check=False)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    for file in changed:
        assert f"error: {file}:" in r.stderr, (file, r.stderr)


@pytest.mark.parametrize("example", ALL)
def test_normalized_json_checks_again(example: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`spec check --json` prints native JSON that `spec check` accepts and normalizes to itself."""
    code, first, _ = call(["spec", "check", "--json", str(EXAMPLES / example)], capsys)
    assert code == 0
    (tmp_path / "app.json").write_text(first)
    code, second, err = call(["spec", "check", "--json", str(tmp_path / "app.json")], capsys)
    assert code == 0, err
    assert json.loads(second) == json.loads(first)
