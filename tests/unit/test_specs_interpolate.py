"""Compose variable interpolation and env files (specs.interpolate)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from specs.interpolate import EnvFileError, InterpolationError, interpolate, parse_env_text

ENV = {"A": "a", "EMPTY": "", "B": "b b"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("$A", "a"),
        ("x$A-y", "xa-y"),
        ("${A}", "a"),
        ("${A}${B}", "ab b"),
        ("$UNSET", ""),
        ("${UNSET}", ""),
        ("$$", "$"),
        ("$$A", "$A"),
        ("$${A}", "${A}"),
        ("$$$A", "$a"),
        ("${UNSET:-d}", "d"),
        ("${EMPTY:-d}", "d"),
        ("${A:-d}", "a"),
        ("${UNSET-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${UNSET:-}", ""),
        ("${UNSET:-a b c}", "a b c"),
        ("${UNSET:-${A}}", "a"),
        ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
        ("${UNSET:-$$}", "$"),
        ("${A:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${UNSET:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${A:?never}", "a"),
        ("${EMPTY?fine}", ""),
        ("${A:-${UNSET:?not evaluated}}", "a"),
        ("{A}", "{A}"),
        ("a}b", "a}b"),
        ("${A}}", "a}"),
        ("postgres://u:${PW:-pw}@db:5432/x", "postgres://u:pw@db:5432/x"),
        ("${A_1:-x}", "x"),
        ("$A.b", "a.b"),
    ],
)
def test_interpolate(text: str, expected: str) -> None:
    assert interpolate(text, ENV) == expected


@pytest.mark.parametrize(
    ("text", "offset", "message"),
    [
        ("${UNSET:?set it}", 0, "required variable UNSET is missing a value: set it"),
        ("x ${EMPTY:?}", 2, "required variable EMPTY is missing a value"),
        ("${UNSET?}", 0, "required variable UNSET is missing a value"),
        ("${UNSET:-${NOPE:?inner}}", 9, "required variable NOPE is missing a value: inner"),
        ("cost: 5$", 7, "invalid interpolation: '$' must be followed by a variable name or '{' (write '$$' for a literal '$')"),
        ("$1", 0, "invalid interpolation: '$' must be followed by a variable name or '{' (write '$$' for a literal '$')"),
        ("${A", 0, "invalid interpolation: missing '}'"),
        ("${}", 0, "invalid interpolation: '${' must be followed by a variable name"),
        ("${1A}", 0, "invalid interpolation: '${' must be followed by a variable name"),
        ("${A B}", 3, "invalid interpolation: unexpected ' ' after ${A; use one of :- - :? ? :+ +"),
        ("${A:-x", 6, "invalid interpolation: missing '}'"),
    ],
)  # fmt: skip
def test_interpolation_errors(text: str, offset: int, message: str) -> None:
    with pytest.raises(InterpolationError) as info:
        interpolate(text, ENV)
    assert (info.value.offset, info.value.message) == (offset, message)


@given(st.text())
def test_escaped_text_survives(text: str) -> None:
    assert interpolate(text.replace("$", "$$"), {}) == text


@given(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True),
    st.text(alphabet=st.characters(blacklist_characters="$}"), max_size=20),
    st.one_of(st.none(), st.text(alphabet=st.characters(blacklist_characters="$"), max_size=20)),
)
def test_default_forms(name: str, default: str, value: str | None) -> None:
    env = {} if value is None else {name: value}
    assert interpolate(f"${{{name}:-{default}}}", env) == (value or default)
    assert interpolate(f"${{{name}-{default}}}", env) == (default if value is None else value)
    assert interpolate(f"${{{name}:+{default}}}", env) == (default if value else "")
    assert interpolate(f"${{{name}+{default}}}", env) == ("" if value is None else default)
    assert interpolate(f"${name}", env) == (value or "")


def test_env_file() -> None:
    text = """# comment
export A=1

B = spaced
C="double \\"quoted\\"\\n$A \\$A"
D='single $A'
E=bare $A # trailing comment
F=
G
H=${UNSET:-dflt}
"""
    assert parse_env_text(text, {"G": "from-env"}) == {
        "A": "1",
        "B": "spaced",
        "C": 'double "quoted"\n1 $A',
        "D": "single $A",
        "E": "bare 1",
        "F": "",
        "G": "from-env",
        "H": "dflt",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("A=1\nnot a line\n", "line 2: expected KEY=VALUE, got 'not a line'"),
        ("A='open\n", "line 1: unterminated single quote"),
        ('A="open\n', "line 1: unterminated double quote"),
        ("A=${NEED:?x}\n", "line 1: required variable NEED is missing a value: x"),
    ],
)
def test_env_file_errors(text: str, message: str) -> None:
    with pytest.raises(EnvFileError, match="^" + message.replace("$", r"\$").replace("{", r"\{") + "$"):
        parse_env_text(text, {})
