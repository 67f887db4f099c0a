"""geard deployment JSON into the model (specs.geard): Go-style key matching, links, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from specs import load_app_text
from specs.app import App, Link, Port
from specs.errors import SpecError, SpecErrors
from specs.source import error_list


def load(doc: Any) -> App:
    return load_app_text(json.dumps(doc, indent=1) if not isinstance(doc, str) else doc, "deploy.json")


def errors(doc: Any) -> list[str]:
    with pytest.raises((SpecError, SpecErrors)) as info:
        load(doc)
    return [str(e) for e in error_list(info.value)]


# geard's own fixture (deployment/fixtures/complex_deploy.json), keys in lower case as written there
COMPLEX = {
    "containers": [
        {
            "name": "web",
            "count": 2,
            "image": "pmorie/sti-html-app",
            "publicports": [{"internal": 8080, "external": 0}],
            "links": [{"to": "web"}, {"to": "db"}],
        },
        {
            "name": "db",
            "count": 3,
            "image": "ccoleman/ubuntu-mongodb",
            "publicports": [{"internal": 27017, "external": 0}],
            "links": [{"to": "db"}],
        },
    ]
}


def test_geard_fixture() -> None:
    app = load(COMPLEX)
    assert app.name == "deploy"
    web, db = app.services["web"], app.services["db"]
    assert web.image == "pmorie/sti-html-app"
    assert web.deploy.replicas == 2 and db.deploy.replicas == 3
    assert web.ports == [Port(target=8080)]
    assert web.x_fusion.links == [Link(to="web"), Link(to="db")]
    # links are discovery only: no start order, so self-links and mutual links are fine
    assert web.depends_on == {} and db.depends_on == {}
    assert app.service_order() == ["db", "web"]


@pytest.mark.parametrize(
    "spelling",
    [
        ("Containers", "Name", "Image", "Count", "PublicPorts", "Internal", "External", "Links", "To"),
        ("containers", "name", "image", "count", "publicports", "internal", "external", "links", "to"),
        ("CONTAINERS", "NAME", "IMAGE", "COUNT", "PUBLICPORTS", "INTERNAL", "EXTERNAL", "LINKS", "TO"),
        ("cOnTaInErS", "nAmE", "iMaGe", "CoUnT", "publicPorts", "internal", "EXTERNAL", "lInKs", "tO"),
        # Go's folding also matches the Kelvin sign to k and the long s to s
        ("containerſ", "name", "image", "count", "publicportſ", "internal", "external", "lin\u212as", "to"),
    ],
)
def test_keys_match_case_insensitively(spelling: tuple[str, ...]) -> None:
    top, name, image, count, pports, internal, external, links, to = spelling
    doc = {
        top: [
            {
                name: "web",
                image: "i",
                count: 1,
                pports: [{internal: 80, external: 8080}],
                links: [{to: "web"}],
            }
        ]
    }
    web = load(doc).services["web"]
    assert web.ports == [Port(target=80, published=8080)]
    assert web.x_fusion.links == [Link(to="web")]
    assert web.deploy.replicas == 1


def test_environment_forms_and_link_ports() -> None:
    app = load(
        {
            "Containers": [
                {"Name": "a", "Image": "i", "Count": 1, "Environment": {"A": "1", "N": 2},
                 "PublicPorts": [{"Internal": 80}, {"Internal": 81}], "Links": [{"To": "a", "Ports": [81]}]},
                {"Name": "b", "Image": "i", "Count": 1, "Environment": [{"Name": "B", "Value": "2"}]},
            ]
        }
    )  # fmt: skip
    assert app.services["a"].environment == {"A": "1", "N": "2"}
    assert app.services["b"].environment == {"B": "2"}
    assert app.services["a"].x_fusion.links == [Link(to="a", ports=[81])]


def test_missing_count_is_zero_like_go() -> None:
    assert load({"Containers": [{"Name": "a", "Image": "i"}]}).services["a"].deploy.replicas == 0


def test_fixed_external_port_spreads_replicas() -> None:
    app = load(
        {
            "Containers": [
                {"Name": "a", "Image": "i", "Count": 3, "PublicPorts": [{"Internal": 80, "External": 8080}]}
            ]
        }
    )
    assert app.services["a"].deploy.placement.max_replicas_per_node == 1


def test_errors_have_positions() -> None:
    text = """{
  "Containers": [
    {
      "Name": "web",
      "name": "web2",
      "Image": "i",
      "Notify": true,
      "Colour": "blue",
      "PublicPorts": [{"Internal": 70000}],
      "Links": [{"To": "db", "NonLocal": true}]
    },
    {"Name": "db", "Image": "i", "Count": -1}
  ],
  "Instances": [{"Id": "web-1"}]
}
"""
    assert errors(text) == [
        "deploy.json:5:7: Containers[0].name: duplicate key 'name': 'Name' already sets Name",
        "deploy.json:7:7: Containers[0].Notify: unsupported: geard Notify (deploy.json:7)",
        "deploy.json:8:7: Containers[0].Colour: unknown key 'Colour' (expected one of Name, Image, PublicPorts, "
        "Links, Notify, Count, Affinity, Environment)",
        "deploy.json:9:36: Containers[0].PublicPorts[0].Internal: Internal must be a port 1-65535, got 70000",
        "deploy.json:10:17: Containers[0].Links[0]: target 'db' has no PublicPorts to link to",
        "deploy.json:10:30: Containers[0].Links[0].NonLocal: unsupported: geard link NonLocal (deploy.json:10)",
        "deploy.json:12:43: Containers[1].Count: Count must be a whole number >= 0, got -1",
        "deploy.json:14:3: Instances: unsupported: geard Instances (deploy.json:14)",
    ]


def test_semantic_errors_point_into_the_file() -> None:
    text = """{"Containers": [
  {"Name": "a", "Image": "i", "Count": 1, "PublicPorts": [{"Internal": 80, "External": 8080}],
   "Links": [{"To": "ghost"}]},
  {"Name": "b", "Image": "i", "Count": 1, "PublicPorts": [{"Internal": 81, "External": 8080}]}
]}
"""
    assert errors(text) == [
        "deploy.json:3:14: Containers[0].Links[0]: links to unknown service 'ghost'",
        "deploy.json:4:59: Containers[1].PublicPorts[0]: host port 8080/tcp is already published by service 'a'",
    ]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"Containers": []}, ["deploy.json:2:16: Containers: expected a non-empty list of containers"]),
        ({"Containers": [{"Image": "i"}]}, ["deploy.json:3:3: Containers[0]: missing Name"]),
        ({"Containers": [{"Name": "a b", "Image": "i"}]},
         ["deploy.json:4:12: Containers[0].Name: bad name 'a b': must match [a-zA-Z0-9][a-zA-Z0-9_.-]*, be at "
          "most 63 characters, and not contain '..' or end in '.' or '-'"]),
        ({"Containers": [{"Name": "a", "Image": "i"}, {"Name": "a", "Image": "j"}]},
         ["deploy.json:8:12: Containers[1].Name: container 'a' is defined twice"]),
        ({"Containers": [{"Name": "a"}]}, ["deploy.json:3:3: Containers[0]: missing Image"]),
    ],
)  # fmt: skip
def test_structural_errors(doc: Any, expected: list[str]) -> None:
    assert errors(doc) == expected
