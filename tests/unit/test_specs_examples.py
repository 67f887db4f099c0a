"""The examples load, and a broken copy of each (bad key, bad port, cycle) names file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from specs import load_app
from specs.errors import InputError, SpecError, SpecErrors
from specs.source import error_list

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_guestbook() -> None:
    app = load_app(EXAMPLES / "guestbook.yaml", env={})
    web, redis = app.services["web"], app.services["redis"]
    assert app.name == "guestbook"
    assert web.image == "localhost:5000/fusion/guestbook-web:1"
    assert [(p.published, p.target) for p in web.ports] == [(8080, 8080)]
    assert web.environment["REDIS_HOST"] == "redis"
    assert web.deploy.replicas == 2 and web.x_fusion.min_available == 1
    assert web.depends_on["redis"].condition == "service_healthy"
    assert web.healthcheck is not None and redis.healthcheck is not None
    assert app.service_order() == ["redis", "web"]


def test_three_tier() -> None:
    app = load_app(EXAMPLES / "three-tier.yaml", env={"APP_VERSION": "7"})
    assert app.service_order() == ["db", "app", "proxy"]
    assert app.services["proxy"].depends_on["app"].condition == "service_healthy"
    assert app.services["app"].depends_on["db"].condition == "service_healthy"
    assert app.services["app"].image == "localhost:5000/fusion/app:7"
    assert app.services["db"].healthcheck is not None
    assert app.services["db"].healthcheck.test == ["CMD-SHELL", "pg_isready -U app -d app"]
    assert app.services["db"].healthcheck.start_period == 30.0  # overrides the merged anchor
    assert app.services["proxy"].healthcheck is not None
    assert app.services["proxy"].healthcheck.interval == 10.0  # from the merged anchor


def test_geard() -> None:
    app = load_app(EXAMPLES / "geard.json", env={})
    assert app.services["web"].deploy.replicas == 2
    assert [link.to for link in app.services["web"].x_fusion.links] == ["redis", "web"]
    assert app.services["redis"].x_fusion.links[0].to == "redis"  # a self-link


def _position(text: str, marker: str) -> tuple[int, int]:
    before = text[: text.index(marker)]
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


# (example, replace this, with this, marker of the error position in the broken text, path, message)
BROKEN = [
    ("guestbook.yaml", "    stop_grace_period: 10s", "    stop_grace_perod: 10s", "stop_grace_perod",
     "services.web.stop_grace_perod", "unknown key 'stop_grace_perod'"),
    ("guestbook.yaml", '- "8080:8080"', '- "8080:80800"', '"8080:80800"',
     "services.web.ports[0]", "container port 80800 out of range 1-65535"),
    ("guestbook.yaml", "    image: localhost:5000/fusion/redis:1\n",
     "    image: localhost:5000/fusion/redis:1\n    depends_on: [web]\n", "web]",
     "services.redis.depends_on[0]", "dependency cycle: redis -> web -> redis"),
    ("three-tier.yaml", "    stop_signal: SIGINT", "    stop_sigal: SIGINT", "stop_sigal",
     "services.db.stop_sigal", "unknown key 'stop_sigal'"),
    ("three-tier.yaml", '- "80:8080"', '- "80:8o8o"', '"80:8o8o"',
     "services.proxy.ports[0]", "bad container port '8o8o': expected a number 1-65535"),
    ("three-tier.yaml", "      - PGDATA", "      - PGDATA", "", "", ""),  # placeholder replaced below
    ("geard.json", '"Count": 2', '"Cuont": 2', '"Cuont"',
     "Containers[0].Cuont", "unknown key 'Cuont' (expected one of Name, Image, PublicPorts, Links, Notify, Count, "
     "Affinity, Environment)"),
    ("geard.json", '{"Internal": 8080, "External": 0}', '{"Internal": 8080, "External": 80800}', "80800",
     "Containers[0].PublicPorts[0].External", "External must be 0 or a port 1-65535, got 80800"),
    ("geard.json", '{"To": "redis"},', '{"To": "redis"}, {"To": "nobody"},', '{"To": "nobody"}',
     "Containers[0].Links[1]", "links to unknown service 'nobody'"),
]  # fmt: skip
# three-tier's cycle: the database waits for the proxy, which (through app) waits for the database
BROKEN[5] = (
    "three-tier.yaml",
    "    image: localhost:5000/fusion/postgres:1\n",
    "    image: localhost:5000/fusion/postgres:1\n    depends_on:\n      proxy: {condition: service_started}\n",
    "db:\n        condition: service_healthy",  # the cycle is reported at its first edge, app -> db
    "services.app.depends_on.db",
    "dependency cycle: app -> db -> proxy -> app",
)


@pytest.mark.parametrize(("example", "old", "new", "marker", "path", "message"), BROKEN)
def test_broken_copies(
    tmp_path: Path, example: str, old: str, new: str, marker: str, path: str, message: str
) -> None:
    text = (EXAMPLES / example).read_text()
    assert text.count(old) == 1, f"{old!r} must occur once in {example}"
    broken = text.replace(old, new)
    file = tmp_path / example
    file.write_text(broken)
    with pytest.raises((SpecError, SpecErrors)) as info:
        load_app(file, env={})
    assert isinstance(info.value, InputError) and info.value.exit_code == 2
    line, col = _position(broken, marker)
    assert [str(e) for e in error_list(info.value)] == [f"{file}:{line}:{col}: {path}: {message}"]
