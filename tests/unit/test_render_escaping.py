"""Property tests: no service value can add a directive, a specifier or a variable.

For arbitrary environment values, labels and command arguments (``%``, ``$``, quotes, backslashes,
spaces, newlines, any Unicode), the rendered unit is parsed back, its ``ExecStart=`` goes through
what systemd does to it (specifiers on the whole line, then word splitting, then ``$`` variables
per word), and the podman/docker arguments must be exactly the values we put in.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specs.app import App
from units import systemd
from units.from_quadlet import quadlet_to_app
from units.render import RenderError, render_app
from units.unitfile import UnitFile

TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=24)
NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,12}", fullmatch=True)
SPECIFIERS = {"%": "%", "t": "/run", "n": "t-s-1.service", "N": "t-s-1"}


def systemd_exec_words(value: str) -> list[str]:
    """systemd's reading of an ``Exec*=`` value; fails on any specifier or variable we did not write."""

    def spec(m: re.Match[str]) -> str:
        assert m.group(1) in SPECIFIERS, f"specifier %{m.group(1)} reached systemd"
        return SPECIFIERS[m.group(1)]

    line = re.sub(r"%(.)", spec, value, flags=re.DOTALL)
    words = systemd.split_command_line(line)
    out = []
    for w in words:
        res, i = [], 0
        while i < len(w):
            if w[i] == "$":
                nxt = w[i + 1 : i + 2]
                if nxt == "$":
                    res.append("$")
                    i += 2
                    continue
                assert not (nxt == "{" or nxt.isalpha() or nxt == "_"), f"variable reference in {w!r}"
            res.append(w[i])
            i += 1
        out.append("".join(res))
    return out


def pairs(words: list[str], flag: str) -> list[str]:
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w == flag]


def render(engine: str, env: dict[str, str], labels: dict[str, str], command: list[str]) -> UnitFile:
    app = App.model_validate(
        {"name": "t", "services": {"s": {"image": "img", "environment": env, "labels": labels, "command": command}}}
    )
    text = render_app(app, engine=engine).files["t-s-1.service"]  # type: ignore[arg-type]
    return UnitFile.parse(text)


def shape(u: UnitFile) -> set[tuple[str, str]]:
    return {(s, k) for s in u.sections() if not s.startswith("X-") for k in u.keys(s)}


BASELINE = {e: shape(render(e, {"A": "b"}, {"l": "v"}, ["run"])) for e in ("podman", "docker")}


def podman_can_carry(value: str) -> bool:
    return value != "" and not (value[-1] in systemd.GO_SPACE and ord(value[-1]) > 0x7F)


@pytest.mark.parametrize("engine", ["podman", "docker"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    env=st.dictionaries(NAMES, TEXT, max_size=4),
    labels=st.dictionaries(NAMES.filter(lambda k: not k.startswith("fusion.")), TEXT, max_size=3),
    command=st.lists(TEXT, min_size=1, max_size=4),
)
def test_values_survive_exactly(engine: str, env: dict[str, str], labels: dict[str, str], command: list[str]) -> None:
    if engine == "podman" and not (all(a != "" for a in command) and podman_can_carry(command[-1])):
        with pytest.raises(RenderError):
            render(engine, env, labels, command)
        return
    u = render(engine, env, labels, command)
    assert shape(u) == BASELINE[engine], "a value added or removed a directive"
    words = systemd_exec_words(u.lookup_last("Service", "ExecStart") or "")
    assert words[-len(command) :] == command
    assert words[-len(command) - 1] == "img"
    assert pairs(words, "--env") == [f"{k}={env[k]}" for k in sorted(env)]
    got_labels = [x for x in pairs(words, "--label") if not x.startswith("fusion.")]
    assert got_labels == [f"{k}={labels[k]}" for k in sorted(labels)]


@pytest.mark.parametrize("engine", ["podman", "docker"])
@pytest.mark.parametrize(
    "value",
    ["100%", "%n", "%%", "$HOME", "${HOME}", "$$", "a\nExecStartPre=/bin/evil", 'q"uote', "back\\slash", " spaced ", "tab\there", "\\", ";", "x;y", "é ü 中"],
)
def test_nasty_values(engine: str, value: str) -> None:
    u = render(engine, {"V": value}, {"k": value}, ["echo", value])
    assert shape(u) == BASELINE[engine]
    words = systemd_exec_words(u.lookup_last("Service", "ExecStart") or "")
    assert words[-2:] == ["echo", value]
    assert f"V={value}" in pairs(words, "--env")
    assert f"k={value}" in pairs(words, "--label")


@settings(max_examples=150, deadline=None)
@given(
    env=st.dictionaries(NAMES, TEXT, max_size=4),
    labels=st.dictionaries(NAMES.filter(lambda k: not k.startswith("fusion.")), TEXT, max_size=3),
    command=st.lists(TEXT.filter(podman_can_carry), min_size=1, max_size=4),
)
def test_quadlet_files_read_back_the_same(env: dict[str, str], labels: dict[str, str], command: list[str]) -> None:
    """The `.container` files the podman engine writes, read by units.from_quadlet, give back the
    same values (so Quadlet escaping and Fusion's reading of it agree)."""
    app = App.model_validate(
        {"name": "t", "services": {"s": {"image": "img", "environment": env, "labels": labels, "command": command}}}
    )
    files = render_app(app).quadlet
    back, _ = quadlet_to_app({f"/q/{k}": v for k, v in files.items()}, app_name="t")
    svc = back.services["t-s-1"]
    assert svc.environment == env
    assert svc.command == command
    assert {k: v for k, v in svc.labels.items() if not k.startswith("fusion.")} == labels
