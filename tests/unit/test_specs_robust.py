"""Whatever a spec file holds, loading it gives an App or a SpecError/SpecErrors: never a traceback."""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from specs import load_app_text
from specs.compose import DEPLOY_KEYS, HEALTH_KEYS, MOUNT_KEYS, PORT_KEYS, SERVICE_KEYS, TOP_KEYS
from specs.errors import InputError

KEYS = sorted(
    TOP_KEYS | SERVICE_KEYS | HEALTH_KEYS | PORT_KEYS | MOUNT_KEYS | DEPLOY_KEYS
    | {"web", "db", "limits", "reservations", "memory", "cpus", "condition", "constraints", "aliases",
       "Containers", "Name", "Image", "Count", "PublicPorts", "Internal", "External", "Links", "To",
       "fusion", "min_available", "bind", "tmpfs", "size", "external", "build", "x-y"}
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["web", "db", "8080:80", "1m30s", "512m", "${X:-1}", "$", "/data", "a:/b:ro", "v1",
                     "node.hostname==h", "CMD", "service_healthy", "on-failure:2", "", "/a,b:/c", "a b",
                     "-x", "./x:/y:z", "tmp:/t", "SIGTERM", "1000:1000", "[::1]:80:80", "NONE"]),
    st.text(max_size=8),
)  # fmt: skip
VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(KEYS), children, max_size=5)
    ),
    max_leaves=30,
)


def _load(text: str, filename: str) -> None:
    try:
        load_app_text(text, filename, env={"X": "2"})
    except InputError as e:
        assert str(e)  # a message for people, with a position
        assert e.exit_code == 2


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=5))
def test_any_yaml_document(doc: dict[str, Any]) -> None:
    _load(yaml.safe_dump(doc), "app.yaml")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=5))
def test_any_json_document(doc: dict[str, Any]) -> None:
    _load(json.dumps(doc), "app.json")


@settings(max_examples=150, deadline=None)
@given(
    st.fixed_dictionaries(
        {"services": st.dictionaries(st.sampled_from(["web", "db", "a b"]),
                                     st.dictionaries(st.sampled_from(sorted(SERVICE_KEYS)), VALUES, max_size=6),
                                     min_size=1, max_size=3)}
    )
)  # fmt: skip
def test_any_service(doc: dict[str, Any]) -> None:
    _load(yaml.safe_dump(doc), "app.yaml")


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_any_text(text: str) -> None:
    _load(text, "app.yaml")
    _load(text, "app.json")
