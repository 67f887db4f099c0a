"""The unit-file model: parsing, podman's lookup semantics, edits, and exact round trips."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from units.unitfile import UnitFile, UnitFileError

GOLDEN = """\
# Leading comment
; another kind of comment

[Unit]
Description=Web server \\
   for the %n unit
After=network-online.target
# a comment between keys
Wants=network-online.target

  [Service]\x20\x20\x20
ExecStart=/usr/bin/podman run \\
# a comment inside a continuation is dropped from the value
    --name web \\
    img
Environment=A=1
Environment=B=2
Environment=
Environment=C=3
   Key With Spaces   =   value with spaces\x20\x20\x20
Empty=
[Install]
WantedBy=default.target multi-user.target
"""


def test_golden_round_trips_exactly() -> None:
    unit = UnitFile.parse(GOLDEN, "web.container")
    assert unit.render() == GOLDEN
    assert UnitFile.parse(unit.render()) == unit


def test_golden_values_follow_podman() -> None:
    unit = UnitFile.parse(GOLDEN, "web.container")
    assert unit.sections() == ["Unit", "Service", "Install"]
    assert unit.lookup_last("Unit", "Description") == "Web server for the %n unit"
    assert unit.lookup_last("Service", "ExecStart") == "/usr/bin/podman run --name web img"
    assert unit.lookup_last_args("Service", "ExecStart") == ["/usr/bin/podman", "run", "--name", "web", "img"]
    assert unit.lookup_all("Service", "Environment") == ["C=3"]  # the empty assignment reset the list
    assert unit.lookup_last("Service", "Key With Spaces") == "value with spaces"
    assert unit.lookup_last("Service", "Empty") == ""
    assert unit.lookup_last("Service", "Missing") is None
    assert unit.keys("Service") == ["ExecStart", "Environment", "Key With Spaces", "Empty"]
    assert unit.lookup_all_strv("Install", "WantedBy") == ["default.target", "multi-user.target"]


def test_dup_writes_what_podman_writes() -> None:
    unit = UnitFile.parse(GOLDEN, "web.container")
    assert unit.dup().render() == (
        "# Leading comment\n"
        "; another kind of comment\n"
        "\n"
        "[Unit]\n"
        "Description=Web server for the %n unit\n"
        "After=network-online.target\n"
        "# a comment between keys\n"
        "Wants=network-online.target\n"
        "\n"
        "[Service]\n"
        "ExecStart=/usr/bin/podman run --name web img\n"
        "Environment=A=1\n"
        "Environment=B=2\n"
        "Environment=\n"
        "Environment=C=3\n"
        "Key With Spaces=value with spaces\n"
        "Empty=\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target multi-user.target\n"
    )


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("Key=value\n[Unit]\n", "key file does not start with a group", 1),
        ("[Unit]\nno equals sign\n", "file contains line 2: \u201cno equals sign\u201d which is not a key-value pair, group, or comment", 2),
        ("[Unit]\n=value\n", "which is not a key-value pair", 2),
        ("[Un[it]\n", "invalid group name: Un[it", 1),
        ("[]\n", "invalid group name: ", 1),
        ("[Unit] trailing\n", "which is not a key-value pair", 1),
    ],
)
def test_bad_syntax_names_file_and_line(text: str, message: str, line: int) -> None:
    with pytest.raises(UnitFileError) as e:
        UnitFile.parse(text, "x.volume", "/etc/containers/systemd/x.volume")
    assert message in str(e.value)
    assert str(e.value).startswith(f"/etc/containers/systemd/x.volume:{line}: ")
    assert e.value.exit_code == 2


def test_repeated_sections_are_merged_like_podman() -> None:
    unit = UnitFile.parse("[A]\nx=1\n[B]\ny=1\n[A]\nx=2\n")
    assert unit.sections() == ["A", "B"]
    assert unit.lookup_all("A", "x") == ["1", "2"]
    assert unit.render() == "[A]\nx=1\nx=2\n[B]\ny=1\n"
    # comments before a repeated header go before the first one, as in podman
    unit = UnitFile.parse("[A]\nx=1\n\n# c\n[A]\ny=2\n")
    assert unit.render() == "\n# c\n[A]\nx=1\ny=2\n"
    assert UnitFile.parse(unit.render()) == unit


def test_podman_lookup_strips_one_pair_of_quotes_and_trailing_space() -> None:
    unit = UnitFile.parse('[S]\nA="quoted value"\nB="unbalanced\nC=\'single\'\n')
    assert unit.lookup("S", "A") == "quoted value"
    assert unit.lookup("S", "B") == '"unbalanced'
    assert unit.lookup("S", "C") == "'single'"
    assert unit.lookup_last("S", "A") == '"quoted value"'


@pytest.mark.parametrize(
    ("value", "expected"),
    [("yes", True), ("TRUE", True), ("1", True), ("on", True), ("no", False), ("0", False), ("maybe", False)],
)
def test_booleans_follow_podman(value: str, expected: bool) -> None:
    assert UnitFile.parse(f"[S]\nk={value}\n").lookup_bool("S", "k") is expected
    assert UnitFile.parse("[S]\n").lookup_bool("S", "k") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("10", 10), ("0x10", 16), ("010", 8), ("-5", -5), ("+7", 7), ("abc", None), ("", None)],
)
def test_integers_follow_strtol(value: str, expected: int | None) -> None:
    assert UnitFile.parse(f"[S]\nk={value}\n").lookup_int("S", "k") == expected


def test_args_lookups() -> None:
    unit = UnitFile.parse('[S]\nA=a "b c" d\\x41\nA=e\nB="unbalanced\nC=x\\qy\nC=z\n')
    assert unit.lookup_all_args("S", "A") == ["a", "b c", "dA", "e"]
    assert unit.lookup_last_args("S", "B") == ["unbalanced"]  # EXTRACT_RELAX
    assert unit.lookup_all_args("S", "C") == ["z"]  # a value that does not split is skipped
    with pytest.raises(UnitFileError):
        unit.lookup_last_args("S", "C") if False else UnitFile.parse("[S]\nC=x\\q\n").lookup_last_args("S", "C")
    assert unit.lookup_last_args("S", "missing") is None


def test_key_val_lookup_like_podman_5_4() -> None:
    unit = UnitFile.parse('[S]\nLabel=a=1 "b=2 3" flag\nLabel=a=4\n')
    assert unit.lookup_all_key_val("S", "Label") == {"a": "4", "b": "2 3"}


def test_edits() -> None:
    unit = UnitFile(filename="a.service")
    unit.add("Unit", "After", "a.target")
    unit.add("Unit", "After", "b.target")
    unit.add("Service", "Type", "simple")
    unit.set("Unit", "After", "c.target")
    unit.prepend("Unit", "Wants", "w.target")
    unit.prepend_comment("", "generated", "")
    unit.add_comment("Service", "the service")
    assert unit.render() == (
        "# generated\n# \n[Unit]\nWants=w.target\nAfter=c.target\n\n# the service\n[Service]\nType=simple\n"
    )
    unit.unset("Unit", "After")
    unit.rename_section("Service", "X-Service")
    assert unit.sections() == ["Unit", "X-Service"]
    assert unit.lookup_last("X-Service", "Type") == "simple"
    other = UnitFile.parse("[Unit]\nAfter=z.target\n[New]\nk=v\n")
    unit.merge(other)
    assert unit.lookup_all("Unit", "After") == ["z.target"]
    assert unit.sections() == ["Unit", "X-Service", "New"]
    copy = unit.copy()
    copy.add("New", "k", "w")
    assert unit.lookup_all("New", "k") == ["v"]
    assert copy != unit
    unit.rename_section("X-Service", "Unit")  # into an existing section: merged
    assert unit.sections() == ["Unit", "New"]
    assert unit.lookup_last("Unit", "Type") == "simple"


@pytest.mark.parametrize(
    "value",
    ["two\nlines", "carriage\rreturn", "nul\0", " leading", "trailing ", "ends with \\"],
)
def test_values_that_would_change_the_file_are_rejected(value: str) -> None:
    unit = UnitFile()
    for edit in (unit.add, unit.set, unit.set_last, unit.prepend):
        with pytest.raises(UnitFileError):
            edit("Service", "Environment", value)


@pytest.mark.parametrize("key", ["", "a=b", "#x", "[x", "two\nlines", " k"])
def test_bad_keys_are_rejected(key: str) -> None:
    with pytest.raises(UnitFileError):
        UnitFile().add("Service", key, "v")


@pytest.mark.parametrize("section", ["", "a]b", "a[b", "x\ny"])
def test_bad_sections_are_rejected(section: str) -> None:
    with pytest.raises(UnitFileError):
        UnitFile().add(section, "k", "v")


def test_a_header_comment_before_any_section_round_trips() -> None:
    unit = UnitFile()
    unit.prepend_comment("", "Automatically generated", "")
    unit.add("Unit", "Description", "x")
    unit.add("Service", "Type", "oneshot")
    text = unit.render()
    assert text == "# Automatically generated\n# \n\n[Unit]\nDescription=x\n\n[Service]\nType=oneshot\n"
    assert UnitFile.parse(text) == unit
    assert UnitFile.parse(text).render() == text


def test_comments_cannot_inject_lines() -> None:
    with pytest.raises(UnitFileError):
        UnitFile().prepend_comment("", "x\n[Service]\nExecStart=/bin/evil")


def test_template_parts_and_dropin_dirs() -> None:
    assert UnitFile(filename="foo-bar@i.container").template_parts() == ("foo-bar", "i", True)
    assert UnitFile(filename="foo@.container").template_parts() == ("foo", "", True)
    assert UnitFile(filename="plain.volume").template_parts() == ("plain", "", False)
    assert UnitFile(filename="foo-bar@i.container").dropin_dirs() == [
        "foo-bar@i.container.d",
        "foo-bar@.container.d",
        "foo-@.container.d",
        "foo-.container.d",
        "container.d",
    ]
    assert UnitFile(filename="a-b-c.volume").dropin_dirs() == [
        "a-b-c.volume.d",
        "a-b-.volume.d",
        "a-.volume.d",
        "volume.d",
    ]


# -- properties -----------------------------------------------------------------------------------

_name_chars = st.text(alphabet="ABCabcxyz019-_.@ ", min_size=1, max_size=8).map(str.strip).filter(bool)
_value_chars = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\0"), max_size=20
)
_ws = st.sampled_from(["", " ", "\t", "  "])


@st.composite
def _unit_texts(draw: st.DrawFn) -> str:
    """Normalized unit-file text: unique section names, every line ending in a newline."""
    lines: list[str] = []
    for _ in range(draw(st.integers(0, 2))):
        lines.append(draw(st.sampled_from(["", "# c", "; c", "  # indented"])))
    names = draw(st.lists(_name_chars.filter(lambda n: "[" not in n and "]" not in n), max_size=4, unique=True))
    for name in names:
        lines.append(f"{draw(_ws)}[{name}]{draw(_ws)}")
        for _ in range(draw(st.integers(0, 5))):
            kind = draw(st.sampled_from(["entry", "entry", "comment", "blank", "continued"]))
            if kind == "comment":
                lines.append(draw(_ws) + draw(st.sampled_from(["#", ";"])) + draw(_value_chars))
            elif kind == "blank":
                lines.append(draw(_ws))
            else:
                key = draw(_name_chars.filter(lambda k: k[0] not in "#;[" and "=" not in k))
                value = draw(_value_chars)
                line = f"{draw(_ws)}{key}{draw(_ws)}={draw(_ws)}{value}"
                if kind == "continued":
                    line += "\\\n" + draw(_ws) + "# inside\n" + draw(_value_chars).replace("\\", "") + "x"
                lines.append(line)
    return "".join(line + "\n" for line in lines)


@settings(max_examples=200)
@given(_unit_texts())
def test_render_of_parse_is_the_text(text: str) -> None:
    try:
        unit = UnitFile.parse(text)
    except UnitFileError:
        assume(False)
        return
    assert unit.render() == text
    assert UnitFile.parse(unit.render()) == unit


@settings(max_examples=300)
@given(st.text(alphabet="[]=#;\\ \tab\n", max_size=60))
def test_any_text_that_parses_round_trips(text: str) -> None:
    try:
        unit = UnitFile.parse(text)
    except UnitFileError:
        return
    assume(text.endswith("\n") or text == "")
    rendered = unit.render()
    reparsed = UnitFile.parse(rendered)
    assert reparsed == unit
    # exact text when no section is repeated (a repeated one is merged, as podman does)
    if len([s for s in unit.sections() if s]) == sum(1 for line in text.split("\n") if _is_header(line)):
        assert rendered == text


def _is_header(line: str) -> bool:
    s = line.strip()
    return s.startswith("[") and "]" in s and not s[s.index("]") + 1 :].strip(" \t")


@st.composite
def _units(draw: st.DrawFn) -> UnitFile:
    unit = UnitFile()
    for _ in range(draw(st.integers(0, 12))):
        op = draw(st.sampled_from(["add", "add", "set", "prepend", "comment", "unset"]))
        section = draw(st.sampled_from(["Unit", "Service", "Install", "X-Container"]))
        if op == "comment" and draw(st.booleans()):
            section = ""  # before the first section
        key = draw(st.sampled_from(["A", "B", "ExecStart", "Environment"]))
        value = draw(_value_chars)
        try:
            if op == "comment":
                unit.prepend_comment(section, value)
            elif op == "unset":
                unit.unset(section, key)
            else:
                getattr(unit, op)(section, key, value)
        except UnitFileError:
            continue
    return unit


@settings(max_examples=200)
@given(_units())
def test_parse_of_render_is_the_unit(unit: UnitFile) -> None:
    assert UnitFile.parse(unit.render()) == unit


@given(_value_chars)
def test_a_value_never_adds_a_directive(value: str) -> None:
    unit = UnitFile()
    try:
        unit.add("Service", "Environment", value)
    except UnitFileError:
        return
    parsed = UnitFile.parse(unit.render())
    assert parsed.sections() == ["Service"]
    assert parsed.keys("Service") == ["Environment"]
    assert parsed.lookup_all("Service", "Environment") == ([value] if value else [])


_FRAGMENTS = ["[A]", "[B]", " [A] ", "\t[B]", "", "  ", "# c", "; d", "k=v", " k = v ", "k=", "x=a\\", "\\", "k=v \\", "=bad"]


@settings(max_examples=500)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=14))
def test_line_soup_round_trips(lines: list[str]) -> None:
    text = "".join(line + "\n" for line in lines)
    try:
        unit = UnitFile.parse(text)
    except UnitFileError:
        return
    assert UnitFile.parse(unit.render()) == unit
    assert UnitFile.parse(unit.render()).render() == unit.render()
    if len([s for s in unit.sections() if s]) == sum(1 for line in lines if _is_header(line)):
        assert unit.render() == text
