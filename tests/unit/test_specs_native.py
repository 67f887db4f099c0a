"""Native JSON (specs.native), format detection (specs.loader) and position tracking (specs.source)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from specs import dump_app_json, load_app, load_app_text
from specs.errors import SpecError, SpecErrors
from specs.loader import default_app_name
from specs.source import error_list, parse_json, parse_yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("example", ["guestbook.yaml", "three-tier.yaml", "geard.json"])
def test_native_round_trip(example: str) -> None:
    app = load_app(EXAMPLES / example, env={})
    text = dump_app_json(app)
    assert json.loads(text)["fusion"] == "v1"
    assert load_app_text(text, "native.json") == app


def test_native_minimal_and_errors() -> None:
    app = load_app_text('{"fusion": "v1", "name": "n", "services": {"a": {"image": "i"}}}', "n.json")
    assert app.services["a"].image == "i"
    text = """{
  "fusion": "v1",
  "name": "n",
  "services": {
    "a": {"image": "i", "ports": [{"target": 0}], "colour": 1},
    "b": {"image": "i", "depends_on": {"a": {}}, "x_fusion": {"min_available": 5}}
  }
}
"""
    with pytest.raises(SpecErrors) as info:
        load_app_text(text, "n.json")
    assert [str(e) for e in info.value.errors] == [
        "n.json:5:46: services.a.ports[0].target: Input should be greater than or equal to 1, got 0",
        "n.json:5:51: services.a.colour: unknown key 'colour'",
    ]
    text2 = text.replace('[{"target": 0}], "colour": 1', "[]")
    with pytest.raises(SpecError) as one:
        load_app_text(text2, "n.json")
    assert (
        str(one.value)
        == "n.json:6:63: services.b.x_fusion.min_available: min_available 5 is more than replicas 1"
    )
    with pytest.raises(SpecError, match=r"n.json:1:12: fusion: unknown native format version 'v9'"):
        load_app_text('{"fusion": "v9", "name": "n"}', "n.json")


@pytest.mark.parametrize(
    ("text", "filename", "kind"),
    [
        ('{"services": {"a": {"image": "i"}}}', "x.json", "compose"),
        ('{"services": {"a": {"image": "i"}}}', "x.spec", "compose"),  # JSON by content
        ("services:\n  a: {image: i}\n", "x", "compose"),
        ('{"Containers": [{"Name": "a", "Image": "i", "Count": 1}]}', "x.json", "geard"),
        ('{"fusion": "v1", "name": "x", "services": {"a": {"image": "i"}}}', "x.json", "native"),
    ],
)
def test_format_detection(text: str, filename: str, kind: str) -> None:
    app = load_app_text(text, filename)
    expected_replicas = {"compose": 1, "geard": 1, "native": 1}[kind]
    assert app.services["a"].deploy.replicas == expected_replicas
    assert app.name == "x"


@pytest.mark.parametrize(
    ("filename", "name"),
    [("guestbook.yaml", "guestbook"), ("/a/b/Three Tier.yml", "three-tier"), ("x.compose.yaml", "x"),
     ("__.yaml", "app"), (".yaml", "app")],
)  # fmt: skip
def test_default_app_name(filename: str, name: str) -> None:
    assert default_app_name(filename) == name


# -- positions -------------------------------------------------------------------------------------


def test_yaml_positions() -> None:
    doc = parse_yaml("a:\n  b: [1, {c: d}]\n  e: |\n    text\n", "f.yaml")
    assert doc.data == {"a": {"b": [1, {"c": "d"}], "e": "text\n"}}
    assert str(doc.where(("a", "b"), "key")) == "f.yaml:2:3"
    assert str(doc.where(("a", "b"))) == "f.yaml:2:6"
    assert str(doc.where(("a", "b", 1, "c"), "key")) == "f.yaml:2:11"
    assert str(doc.where(("a", "e"))) == "f.yaml:3:6"
    assert str(doc.where(("a", "missing", "deeper"))) == "f.yaml:2:3"  # nearest ancestor (a's value)


def test_json_positions_and_values() -> None:
    text = '{\n\t"a": [1, -2.5e3, true, null, "\\u00e9\\n"],\n  "b": {"c": NaN, "d": -Infinity}\n}'
    doc = parse_json(text, "f.json")
    assert doc.data["a"] == [1, -2500.0, True, None, "é\n"]
    assert math.isnan(doc.data["b"]["c"]) and doc.data["b"]["d"] == -math.inf
    assert str(doc.where(("a",), "key")) == "f.json:2:2"
    assert str(doc.where(("a", 4))) == "f.json:2:31"
    assert str(doc.where(("b", "d"))) == "f.json:3:24"


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda children: st.lists(children) | st.dictionaries(st.text(), children),
        max_leaves=20,
    ),
    st.sampled_from([None, 1, "\t"]),
)
def test_json_scanner_agrees_with_json_module(value: object, indent: int | str | None) -> None:
    text = json.dumps(value, indent=indent)
    assert parse_json(text, "f.json").data == json.loads(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\na: 2\n", "f.yaml:2:1: a: duplicate key 'a' (first at line 1)"),
        ("a: [\n", "f.yaml:2:1: invalid YAML: expected the node content, but found '<stream end>'"),
        ("a: !!python/object:os.system x\n", "f.yaml:1:4: invalid YAML: could not determine a constructor for the tag 'tag:yaml.org,2002:python/object:os.system'"),
        ("a: 2001-01-01\n", "f.yaml:1:4: a: unsupported YAML value of type date"),
        ("? [a, b]\n: c\n", "f.yaml:1:3: a key must be a plain value"),
        ("a: &x 1\nb:\n  <<: *x\n", "f.yaml:1:4: b: '<<' must merge a mapping"),
    ],
)  # fmt: skip
def test_yaml_errors(text: str, message: str) -> None:
    with pytest.raises((SpecError, SpecErrors)) as info:
        parse_yaml(text, "f.yaml")
    assert [str(e) for e in error_list(info.value)] == [message]


def test_yaml_flow_mapping_is_not_mistaken_for_json() -> None:
    assert load_app_text("{services: {a: {image: i}}}\n", "x.spec").services["a"].image == "i"
