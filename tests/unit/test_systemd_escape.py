"""systemd's word splitting, quoting, specifier and unit-name escaping (units/systemd.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from units import systemd
from units.unitfile import UnitFile, UnitFileError

# systemd.service(5) "Command lines" and systemd's extract_first_word() with
# EXTRACT_UNQUOTE|EXTRACT_CUNESCAPE|EXTRACT_RELAX.
SPLITS = [
    ("", []),
    ("   ", []),
    ("a b  c", ["a", "b", "c"]),
    ("\ta\tb\n", ["a", "b"]),
    ('"a b" c', ["a b", "c"]),
    ("'a b' c", ["a b", "c"]),
    ('a"b c"d', ["ab cd"]),  # quotes do not end a word
    ("\"it's\"", ["it's"]),
    ("'say \"hi\"'", ['say "hi"']),
    ('""', [""]),  # a quoted empty string is a word
    ("a '' b", ["a", "", "b"]),
    (r"a\nb", ["a\nb"]),
    (r"\t\a\b\f\r\v\\", ["\t\a\b\f\r\v\\"]),
    (r"\s", [" "]),
    (r"one\stwo", ["one two"]),
    (r"\x41\101\u00e9\U0001F600", ["AA\u00e9\U0001f600"]),
    (r'"a\"b"', ['a"b']),
    (r"'a\'b'", ["a'b"]),
    (r'"tab\there"', ["tab\there"]),
    ('"unbalanced', ["unbalanced"]),  # EXTRACT_RELAX
    ("trailing\\", ["trailing"]),  # EXTRACT_RELAX eats a trailing backslash
    ("%h/x $HOME ${A}", ["%h/x", "$HOME", "${A}"]),  # specifiers and variables are not the splitter's
    ("ünï cödé", ["ünï", "cödé"]),
]


@pytest.mark.parametrize(("line", "words"), SPLITS)
def test_split_command_line(line: str, words: list[str]) -> None:
    assert systemd.split_command_line(line) == words


@pytest.mark.parametrize("line", [r"a\qb", r"\x00", r"\u0000", r"\xZZ", r"\777", r"\U00110000", "a\\ b"])
def test_bad_escapes_are_errors(line: str) -> None:
    with pytest.raises(systemd.SplitError):
        systemd.split_command_line(line)


def test_podman_stops_at_an_empty_word() -> None:
    # podman's Go port ends the list at a quoted empty word (checked against the real Quadlet:
    # PodmanArgs=--a "" --b gives only --a)
    assert systemd.split_command_line('a "" b', keep_empty=False) == ["a"]


@pytest.mark.parametrize(
    ("line", "words"),
    [("a b", ["a", "b"]), ('"a b" c', ["a b", "c"]), (r"a\x41", [r"a\x41"]), ("x.target  'y z'", ["x.target", "y z"])],
)
def test_strv_split_keeps_backslashes(line: str, words: list[str]) -> None:
    assert systemd.split_strv(line) == words


# -- quoting --------------------------------------------------------------------------------------

QUADLET_WORDS = [
    (["/usr/bin/podman", "run", "img"], "/usr/bin/podman run img"),
    (["--label", "a=b c"], '--label "a=b c"'),
    (["x\"y"], r'"x\"y"'),
    (["it's"], "\"it's\""),
    (["back\\slash"], r'"back\\slash"'),
    (["tab\there", "nl\nx"], r'"tab\there" "nl\nx"'),
    (["%h/data", "$HOME"], "%h/data $HOME"),  # Quadlet leaves specifiers and variables alone
    (["\x01"], r'"\x01"'),
    (["ünï"], "ünï"),
    (["a", "", "b"], "a  b"),  # podman writes an empty word as nothing
]


@pytest.mark.parametrize(("words", "text"), QUADLET_WORDS)
def test_escape_words_is_quadlets(words: list[str], text: str) -> None:
    assert systemd.escape_words(words) == text


@pytest.mark.parametrize(
    ("arg", "text", "exec_text"),
    [
        ("plain", "plain", "plain"),
        ("", '""', '""'),
        (";", '";"', '";"'),
        ("a b", '"a b"', '"a b"'),
        ("100%", "100%%", "100%%"),
        ("%n", "%%n", "%%n"),
        ("$HOME", "$HOME", "$$HOME"),
        ("${A}%", "${A}%%", "$${A}%%"),
        ("new\nline", r'"new\nline"', r'"new\nline"'),
        ("nbsp\u00a0", '"nbsp\u00a0"', '"nbsp\u00a0"'),
        ("\u0080", '"\u0080"', '"\u0080"'),
    ],
)
def test_quote_arg(arg: str, text: str, exec_text: str) -> None:
    assert systemd.quote_arg(arg, variables=False) == text
    assert systemd.quote_arg(arg) == exec_text


def test_specifier_escaping() -> None:
    assert systemd.escape_specifiers("50% of %h") == "50%% of %%h"
    assert systemd.unescape_specifiers("50%% of %%h") == "50% of %h"
    assert systemd.escape_variables("$A ${B} $$") == "$$A $${B} $$$$"


def _unspecify(value: str, *, exec_key: bool) -> str:
    """What systemd does to a value with only escaped specifiers and variables: ``%%``→``%``, ``$$``→``$``.

    (systemd expands specifiers on the whole line before splitting, and ``$$`` per word at start
    time; with no other ``$`` the order does not matter.)
    """
    value = value.replace("%%", "%")
    return value.replace("$$", "$") if exec_key else value


_args = st.lists(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0\n"), max_size=12),
    min_size=1,
    max_size=6,
)


@settings(max_examples=400)
@given(_args, st.sampled_from(["ExecStart", "ExecStopPost", "Environment"]))
def test_any_arguments_survive_render_parse_split(args: list[str], key: str) -> None:
    unit = UnitFile()
    unit.add_cmdline("Service", key, args)
    parsed = UnitFile.parse(unit.render())
    assert parsed.sections() == ["Service"]
    assert parsed.keys("Service") == [key]
    value = parsed.lookup_last("Service", key)
    assert value is not None
    assert systemd.split_command_line(_unspecify(value, exec_key=key.startswith("Exec"))) == args


@settings(max_examples=200)
@given(_args)
def test_no_specifier_or_variable_survives_quoting(args: list[str]) -> None:
    value = systemd.quote_args(args)
    # after the escapes, every % and $ comes in pairs: nothing systemd would expand
    assert "%" not in value.replace("%%", "")
    assert "$" not in value.replace("$$", "")


@settings(max_examples=200)
@given(_args)
def test_quadlet_words_split_back(args: list[str]) -> None:
    """podman's quoting gives the words back too (except empty words, which podman drops)."""
    text = systemd.escape_words(args)
    assert systemd.split_command_line(text, keep_empty=False) == [a for a in args if a]


def test_nul_is_rejected() -> None:
    with pytest.raises(UnitFileError):
        UnitFile().add_cmdline("Service", "ExecStart", ["a\0b"])
    with pytest.raises(UnitFileError):
        UnitFile().add_cmdline("Service", "ExecStart", [])


# -- unit names (systemd-escape) ------------------------------------------------------------------

# Recorded from systemd-escape (systemd 252) on the development machine.
ESCAPES = [
    ("a b", r"a\x20b"),
    ("/", "-"),
    ("foo/bar", "foo-bar"),
    (".hidden", r"\x2ehidden"),
    ("ünï", r"\xc3\xbcn\xc3\xaf"),
    ("a-b", r"a\x2db"),
    ("", ""),
    ("x:y_z.w", "x:y_z.w"),
    ("@", r"\x40"),
]
PATH_ESCAPES = [("/", "-"), ("/a/b/", "a-b"), ("//a//b", "a-b"), ("/-x", r"\x2dx"), ("/srv/my data", r"srv-my\x20data")]


@pytest.mark.parametrize(("text", "escaped"), ESCAPES)
def test_unit_name_escape(text: str, escaped: str) -> None:
    assert systemd.unit_name_escape(text) == escaped
    assert systemd.unit_name_unescape(escaped) == text


@pytest.mark.parametrize(("path", "escaped"), PATH_ESCAPES)
def test_unit_name_escape_path(path: str, escaped: str) -> None:
    assert systemd.unit_name_escape(path, path=True) == escaped


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0/"), max_size=20))
def test_unit_name_escape_round_trips(text: str) -> None:
    escaped = systemd.unit_name_escape(text)
    assert all(c.isascii() for c in escaped)
    assert "/" not in escaped
    assert systemd.unit_name_unescape(escaped) == text


def test_path_escape_is_podmans() -> None:
    assert systemd.path_escape("/var/lib/my-data") == r"var-lib-my\x2ddata"
