"""The normalized app model (specs.app): defaults, validation, ordering and the semantic checks."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from specs.app import DEFER_CHECKS, App, Constraint, Healthcheck, Placement, Port, Service, name_problem


def app(services: dict[str, Any], **top: Any) -> App:
    return App.model_validate({"name": "t", "services": services, **top}, context={DEFER_CHECKS: True})


def problems(services: dict[str, Any], **top: Any) -> list[tuple[str, str]]:
    return [(p.path, p.message) for p in app(services, **top).problems()]


def test_defaults_follow_compose_and_docker() -> None:
    s = Service(image="i")
    assert s.restart == "no"
    assert s.stop_grace_period == 10.0
    assert s.deploy.replicas == 1
    assert s.deploy.update_config.order == "stop-first"
    assert s.deploy.update_config.failure_action == "pause"
    assert s.x_fusion.min_available == 0
    hc = Healthcheck(test=["CMD", "true"])
    assert (hc.interval, hc.timeout, hc.retries, hc.start_period) == (30.0, 30.0, 3, 0.0)


def test_models_are_frozen_and_strict() -> None:
    s = Service(image="i")
    with pytest.raises(ValidationError):
        s.image = "j"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Extra inputs"):
        Service.model_validate({"image": "i", "imagee": "j"})


@pytest.mark.parametrize(
    "test",
    [["CMD"], ["SHELL", "x"], ["CMD-SHELL", "a", "b"], []],
)
def test_healthcheck_test_form(test: list[str]) -> None:
    with pytest.raises(ValidationError):
        Healthcheck(test=test)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("web", True),
        ("Web-1", True),
        ("a.b_c", True),
        ("9lives", True),
        ("-web", False),
        ("_web", False),
        ("web-", False),
        ("web.", False),
        ("a..b", False),
        ("has space", False),
        ("x" * 63, True),
        ("x" * 64, False),
        ("wéb", False),
        ("", False),
    ],
)
def test_names(name: str, ok: bool) -> None:
    assert (name_problem(name) is None) is ok


def test_service_order_is_topological_and_deterministic() -> None:
    a = app(
        {
            "proxy": {"image": "i", "depends_on": {"app": {}}},
            "app": {"image": "i", "depends_on": {"db": {}, "cache": {}}},
            "db": {"image": "i"},
            "cache": {"image": "i"},
            "zeta": {"image": "i"},
        }
    )
    assert a.service_order() == ["cache", "db", "zeta", "app", "proxy"]
    assert a.dependents("db") == ["app"]


def test_cycle_is_named() -> None:
    a = app(
        {
            "a": {"image": "i", "depends_on": {"b": {}}},
            "b": {"image": "i", "depends_on": {"c": {}}},
            "c": {"image": "i", "depends_on": {"a": {}}},
        }
    )
    assert a.dependency_cycle() == ["a", "b", "c", "a"]
    with pytest.raises(ValueError, match="dependency cycle: a -> b -> c -> a"):
        a.service_order()


def test_checks_run_when_built_directly() -> None:
    with pytest.raises(ValidationError, match="depends on unknown service 'db'"):
        App(name="t", services={"web": Service.model_validate({"image": "i", "depends_on": {"db": {}}})})


@pytest.mark.parametrize(
    ("services", "top", "expected"),
    [
        (
            {"web": {"image": "i", "depends_on": {"web": {}}}},
            {},
            [("services.web.depends_on.web", "dependency cycle: web -> web")],
        ),
        (
            {"web": {"image": "i", "depends_on": {"db": {}}}},
            {},
            [("services.web.depends_on.db", "depends on unknown service 'db'")],
        ),
        (
            {"a": {"image": "i", "ports": [{"target": 80, "published": 8080}]},
             "b": {"image": "i", "ports": [{"target": 81, "published": 8080, "host_ip": "127.0.0.1"}]}},
            {},
            [("services.b.ports[0]", "host port 8080/tcp is already published by service 'a'")],
        ),
        (  # different protocols or different specific addresses do not collide
            {"a": {"image": "i", "ports": [{"target": 80, "published": 8080, "host_ip": "127.0.0.1"}]},
             "b": {"image": "i", "ports": [{"target": 81, "published": 8080, "host_ip": "127.0.0.2"},
                                           {"target": 81, "published": 8080, "protocol": "udp"}]}},
            {},
            [],
        ),
        (
            {"a": {"image": "i", "deploy": {"replicas": 2}, "ports": [{"target": 80, "published": 8080}]}},
            {},
            [("services.a.ports[0]", "published port 8080 with 2 replicas: two replicas on one host would "
              "collide; set deploy.placement.max_replicas_per_node: 1 or leave the host port out")],
        ),
        (
            {"a": {"image": "i", "deploy": {"replicas": 2, "placement": {"max_replicas_per_node": 1}},
                   "ports": [{"target": 80, "published": 8080}, {"target": 81}]}},
            {},
            [],
        ),
        (
            {"a": {"image": "i", "x_fusion": {"min_available": 2}}},
            {},
            [("services.a.x-fusion.min_available", "min_available 2 is more than replicas 1")],
        ),
        (
            {"a": {"image": "i", "x_fusion": {"links": [{"to": "a"}, {"to": "b"}]}}},
            {},
            [("services.a.x-fusion.links[1]", "links to unknown service 'b'")],
        ),
        (
            {"a": {"image": "i", "volumes": [{"type": "volume", "source": "v", "target": "/v"},
                                             {"type": "volume", "target": "/anon"}],
                   "networks": {"n": {}}}},
            {},
            [("services.a.volumes[0]", "volume 'v' is not declared under top-level volumes"),
             ("services.a.networks.n", "network 'n' is not declared under top-level networks")],
        ),
        (
            {"a": {"image": "i", "volumes": [{"type": "volume", "source": "v", "target": "/v"}],
                   "networks": {"n": {}}}},
            {"volumes": {"v": {}}, "networks": {"n": {}}},
            [],
        ),
        (
            {"bad name": {"image": "i"}},
            {},
            [("services.bad name", "bad name 'bad name': must match [a-zA-Z0-9][a-zA-Z0-9_.-]*, be at most "
              "63 characters, and not contain '..' or end in '.' or '-'")],
        ),
    ],
)  # fmt: skip
def test_problems(services: dict[str, Any], top: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert problems(services, **top) == expected


@pytest.mark.parametrize(
    ("constraint", "hostname", "labels", "ok"),
    [
        (("node.hostname", "==", "h1"), "h1", {}, True),
        (("node.hostname", "!=", "h1"), "h1", {}, False),
        (("node.labels.zone", "==", "a"), "h1", {"zone": "a"}, True),
        (("node.labels.zone", "==", "a"), "h1", {}, False),
        (("node.labels.zone", "!=", "a"), "h1", {}, True),
    ],
)
def test_constraint_matches(
    constraint: tuple[str, str, str], hostname: str, labels: dict[str, str], ok: bool
) -> None:
    label, op, value = constraint
    c = Constraint.model_validate({"label": label, "op": op, "value": value})
    assert c.matches(hostname, labels) is ok
    assert Placement(constraints=[c]).allows(hostname, labels) is ok
    assert str(c) == f"{label}{op}{value}"


def test_constraint_rejects_unknown_attribute() -> None:
    with pytest.raises(ValidationError, match="unsupported constraint attribute 'node.role'"):
        Constraint(label="node.role", op="==", value="manager")


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_port_range(port: int) -> None:
    with pytest.raises(ValidationError):
        Port(target=port)
