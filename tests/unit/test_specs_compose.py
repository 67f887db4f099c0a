"""Compose files (YAML and JSON) into the model: every supported form, and every error with its
exact ``file:line:col: path: message`` text."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from specs import load_app, load_app_text
from specs.app import App, Port
from specs.errors import InputError, SpecError, SpecErrors
from specs.grammar import parse_bytes, parse_constraint, parse_duration, parse_port
from specs.source import error_list


def load(text: str, env: dict[str, str] | None = None, filename: str = "app.yaml") -> App:
    return load_app_text(textwrap.dedent(text), filename, env=env or {})


def svc(body: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Load one service ``s`` whose keys are ``body`` and dump it without defaults."""
    text = "services:\n  a: {image: a}\n  b: {image: b}\n  s:\n    image: img\n"
    text += textwrap.indent(textwrap.dedent(body), "    ")
    text += "volumes: {data: {}, cache: {}}\nnetworks: {front: {}, back: {}}\n"
    app = load_app_text(text, "/srv/specs/app.yaml", env=env or {})
    return app.services["s"].model_dump(mode="json", exclude_defaults=True)


def errors(text: str, env: dict[str, str] | None = None, filename: str = "app.yaml") -> list[str]:
    with pytest.raises((SpecError, SpecErrors)) as info:
        load(text, env, filename)
    assert isinstance(info.value, InputError) and info.value.exit_code == 2
    return [str(e) for e in error_list(info.value)]


# -- value grammars --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10.0), ("1m30s", 90.0), ("1h", 3600.0), ("1.5s", 1.5), ("250ms", 0.25), ("100us", 1e-4),
     ("2h45m", 9900.0), ("0", 0.0), (5, 5.0), (0.5, 0.5), ("1m0.5s", 60.5)],
)  # fmt: skip
def test_durations(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["10", "s", "1x", "1m 30s", "-1s", "", "1.2.3s", True, -3])
def test_bad_durations(text: Any) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [("512m", 512 * 2**20), ("1g", 2**30), ("1GB", 2**30), ("64k", 65536), ("64kb", 65536), ("100", 100),
     ("100b", 100), (4096, 4096), ("1.5g", 3 * 2**29), ("2t", 2 * 2**40)],
)  # fmt: skip
def test_sizes(text: str | int, size: int) -> None:
    assert parse_bytes(text) == size


@pytest.mark.parametrize("text", ["12q", "m", "-1m", "0", 0, "1 gigabyte", True, 1.5])
def test_bad_sizes(text: Any) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_bytes(text)


@pytest.mark.parametrize(
    ("text", "ports"),
    [
        (80, [Port(target=80)]),
        ("80", [Port(target=80)]),
        ("8080:80", [Port(target=80, published=8080)]),
        ("8080:80/udp", [Port(target=80, published=8080, protocol="udp")]),
        ("127.0.0.1:8080:80", [Port(target=80, published=8080, host_ip="127.0.0.1")]),
        ("127.0.0.1::80", [Port(target=80, host_ip="127.0.0.1")]),
        ("[::1]:8080:80", [Port(target=80, published=8080, host_ip="::1")]),
        ("9000-9001:90-91", [Port(target=90, published=9000), Port(target=91, published=9001)]),
        ("90-91", [Port(target=90), Port(target=91)]),
    ],
)
def test_short_ports(text: str | int, ports: list[Port]) -> None:
    assert parse_port(text) == ports


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("70000:80", "host port 70000 out of range 1-65535"),
        ("8080:0", "container port 0 out of range 1-65535"),
        ("http", "bad container port 'http': expected a number 1-65535"),
        ("80/sctp", "bad protocol 'sctp': expected tcp or udp"),
        ("9000-9002:90-91", "the host port range and the container port range must have the same length"),
        ("1:2:3:4", "expected [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]"),
        ("91-90", "end before start"),
    ],
)
def test_bad_short_ports(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_port(text)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("node.hostname==h1", ("node.hostname", "==", "h1")),
        ("node.labels.zone != b", ("node.labels.zone", "!=", "b")),
        ("  node.labels.disk==ssd  ", ("node.labels.disk", "==", "ssd")),
    ],
)
def test_constraints(text: str, parsed: tuple[str, str, str]) -> None:
    c = parse_constraint(text)
    assert (c.label, c.op, c.value) == parsed


@pytest.mark.parametrize(
    "text", ["zone=a", "node.labels.==a", "node.hostname==", "node.role==manager", "==x"]
)
def test_bad_constraints(text: str) -> None:
    with pytest.raises(ValueError):
        parse_constraint(text)


# -- service forms ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("command: python -m app --name 'a b'\n", {"command": ["python", "-m", "app", "--name", "a b"]}),
        ("command: [python, -m, app]\n", {"command": ["python", "-m", "app"]}),
        ("entrypoint: /bin/sh -c\n", {"entrypoint": ["/bin/sh", "-c"]}),
        ("entrypoint: []\n", {"entrypoint": []}),
        ("environment: {A: 1, B: true, C: x, D: null, HOME_: ~}\n", {"environment": {"A": "1", "B": "true", "C": "x", "HOME_": "h"}}),
        ("environment: [A=1, B=x=y, HOME_, NOT_SET]\n", {"environment": {"A": "1", "B": "x=y", "HOME_": "h"}}),
        ("labels: {a.b: c, n: 1}\n", {"labels": {"a.b": "c", "n": "1"}}),
        ("labels: [a.b=c, d]\n", {"labels": {"a.b": "c", "d": ""}}),
        ("ports: [80, '8080:81', {target: 82, published: '8082', host_ip: 127.0.0.1, protocol: udp, mode: host}]\n",
         {"ports": [{"target": 80}, {"target": 81, "published": 8080},
                    {"target": 82, "published": 8082, "host_ip": "127.0.0.1", "protocol": "udp"}]}),
        ("volumes: [data:/data, /anon, './conf:/etc/conf:ro,z', '/abs:/abs:rshared', 'cache:/c:nocopy']\n",
         {"volumes": [{"type": "volume", "source": "data", "target": "/data"},
                      {"type": "volume", "target": "/anon"},
                      {"type": "bind", "source": "/srv/specs/conf", "target": "/etc/conf", "read_only": True, "selinux": "z"},
                      {"type": "bind", "source": "/abs", "target": "/abs", "propagation": "rshared"},
                      {"type": "volume", "source": "cache", "target": "/c", "nocopy": True}]}),
        ("volumes:\n  - {type: bind, source: ../x, target: /x, read_only: true, bind: {create_host_path: false, selinux: Z}}\n"
         "  - {type: volume, source: data, target: /d, volume: {nocopy: true}}\n"
         "  - {type: tmpfs, target: /t, tmpfs: {size: 64m, mode: 1777}}\n",
         {"volumes": [{"type": "bind", "source": "/srv/x", "target": "/x", "read_only": True,
                       "create_host_path": False, "selinux": "Z"},
                      {"type": "volume", "source": "data", "target": "/d", "nocopy": True},
                      {"type": "tmpfs", "target": "/t", "tmpfs_size": 64 * 2**20, "tmpfs_mode": 0o1777}]}),
        ("tmpfs: /run\n", {"volumes": [{"type": "tmpfs", "target": "/run"}]}),
        ("tmpfs: ['/run:size=1m,mode=0755']\n", {"volumes": [{"type": "tmpfs", "target": "/run", "tmpfs_size": 2**20, "tmpfs_mode": 0o755}]}),
        ("depends_on: [a, b]\n", {"depends_on": {"a": {}, "b": {}}}),
        ("depends_on: {a: {condition: service_healthy, restart: true}, b: {condition: service_completed_successfully, required: false}}\n",
         {"depends_on": {"a": {"condition": "service_healthy", "restart": True},
                         "b": {"condition": "service_completed_successfully", "required": False}}}),
        ("healthcheck: {test: curl -f http://x/, interval: 10s, timeout: 2s, retries: 5, start_period: 1m, start_interval: 1s}\n",
         {"healthcheck": {"test": ["CMD-SHELL", "curl -f http://x/"], "interval": 10.0, "timeout": 2.0, "retries": 5,
                          "start_period": 60.0, "start_interval": 1.0}}),
        ("healthcheck: {test: [CMD, curl, -f, 'http://x/']}\n", {"healthcheck": {"test": ["CMD", "curl", "-f", "http://x/"]}}),
        ("healthcheck: {test: [CMD-SHELL, 'exit 0']}\n", {"healthcheck": {"test": ["CMD-SHELL", "exit 0"]}}),
        ("healthcheck: {test: [NONE]}\n", {"healthcheck": {"disable": True}}),
        ("healthcheck: {disable: true}\n", {"healthcheck": {"disable": True}}),
        ("restart: no\n", {}),
        ("restart: 'no'\n", {}),
        ("restart: always\n", {"restart": "always"}),
        ("restart: on-failure:3\n", {"restart": "on-failure", "restart_max_retries": 3}),
        ("restart: unless-stopped\n", {"restart": "unless-stopped"}),
        ("stop_grace_period: 1m30s\nstop_signal: SIGINT\n", {"stop_grace_period": 90.0, "stop_signal": "SIGINT"}),
        ("user: 1000\nworking_dir: /app\nhostname: h\nread_only: true\ninit: true\n",
         {"user": "1000", "working_dir": "/app", "hostname": "h", "read_only": True, "init": True}),
        ("cap_add: [net_admin, CAP_SYS_TIME]\ncap_drop: [ALL]\n", {"cap_add": ["NET_ADMIN", "SYS_TIME"], "cap_drop": ["ALL"]}),
        ("networks: [front, back]\n", {"networks": {"front": {}, "back": {}}}),
        ("networks: {front: null, back: {aliases: [api, api2]}}\n", {"networks": {"front": {}, "back": {"aliases": ["api", "api2"]}}}),
        ("deploy:\n  mode: replicated\n  replicas: 3\n  labels: {tier: web}\n"
         "  placement: {constraints: ['node.labels.zone==a', 'node.hostname != h2'], max_replicas_per_node: 1}\n"
         "  resources: {limits: {cpus: '0.5', memory: 512m, pids: 100}, reservations: {cpus: 0.25, memory: 1g}}\n"
         "  update_config: {parallelism: 2, delay: 10s, order: start-first, failure_action: rollback, monitor: 1m, max_failure_ratio: 0.5}\n"
         "  restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3, window: 2m}\n",
         {"deploy": {"replicas": 3, "labels": {"tier": "web"},
                     "placement": {"constraints": [{"label": "node.labels.zone", "op": "==", "value": "a"},
                                                   {"label": "node.hostname", "op": "!=", "value": "h2"}],
                                   "max_replicas_per_node": 1},
                     "resources": {"limits": {"cpus": 0.5, "memory": 512 * 2**20, "pids": 100},
                                   "reservations": {"cpus": 0.25, "memory": 2**30}},
                     "update_config": {"parallelism": 2, "delay": 10.0, "order": "start-first",
                                       "failure_action": "rollback", "monitor": 60.0, "max_failure_ratio": 0.5},
                     "restart_policy": {"condition": "on-failure", "max_attempts": 3, "window": 120.0}}}),
        ("deploy: {replicas: 3}\nx-fusion: {min_available: 2, links: [s, {to: s, ports: [80]}]}\n",
         {"deploy": {"replicas": 3}, "x_fusion": {"min_available": 2, "links": [{"to": "s"}, {"to": "s", "ports": [80]}]}}),
        ("x-anything: {ignored: true}\n", {}),
    ],
)  # fmt: skip
def test_service_forms(body: str, expected: dict[str, Any]) -> None:
    got = svc(body, env={"HOME_": "h"})
    got.pop("image")
    assert got == expected


def test_interpolation_everywhere() -> None:
    app = load(
        """
        name: ${APP:-demo}
        services:
          web:
            image: reg/${IMG}:${TAG:-1}
            ports: ["${PORT}:80"]
            deploy: {replicas: "${N}", placement: {max_replicas_per_node: 1}}
            environment: {PRICE: "$$5", USER: $WHO}
        """,
        env={"IMG": "web", "PORT": "8081", "N": "3", "WHO": "me"},
    )
    web = app.services["web"]
    assert app.name == "demo"
    assert web.image == "reg/web:1"
    assert web.ports == [Port(target=80, published=8081)]
    assert web.deploy.replicas == 3
    assert web.environment == {"PRICE": "$5", "USER": "me"}


def test_yaml_anchors_and_merge_keys() -> None:
    app = load(
        """
        x-common: &common
          restart: always
          environment: {A: "1"}
        services:
          a:
            <<: *common
            image: i
          b:
            <<: *common
            image: j
            restart: "no"
        """
    )
    assert app.services["a"].restart == "always"
    assert app.services["b"].restart == "no"
    assert app.services["b"].environment == {"A": "1"}


def test_default_network_and_name() -> None:
    app = load("services:\n  a: {image: i, networks: [default]}\n", filename="/x/My App.v2.yaml")
    assert app.name == "my-app"
    assert list(app.networks) == ["default"]


def test_env_file(tmp_path: Path) -> None:
    (tmp_path / "common.env").write_text("A=1\nB=from-file\nC=${OUTER:-x}\n")
    (tmp_path / "app.yaml").write_text(
        "services:\n  s:\n    image: i\n    env_file: [common.env, {path: missing.env, required: false}]\n"
        "    environment: {B: from-spec}\n"
    )
    app = load_app(tmp_path / "app.yaml", env={"OUTER": "o"})
    assert app.services["s"].environment == {"A": "1", "B": "from-spec", "C": "o"}
    assert app.services["s"].env_file == ["common.env"]


def test_dotenv_next_to_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("TAG=7\nREG=from-dotenv\n")
    (tmp_path / "app.yaml").write_text("services:\n  s:\n    image: ${REG}/x:${TAG}\n")
    monkeypatch.setenv("REG", "from-environ")
    assert load_app(tmp_path / "app.yaml").services["s"].image == "from-environ/x:7"


def test_json_compose() -> None:
    text = json.dumps(
        {"services": {"web": {"image": "i", "ports": ["8080:80"], "deploy": {"replicas": 1e0}}}}
    )
    assert load_app_text(text, "app.json").services["web"].ports == [Port(target=80, published=8080)]


# -- errors, with their exact text ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            """\
            services:
              web:
                image: x
                imagee: y
            """,
            ["app.yaml:4:5: services.web.imagee: unknown key 'imagee'"],
        ),
        (
            """\
            services:
              web:
                image: x
                ports:
                  - "8080:80"
                  - "70000:80"
            """,
            ["app.yaml:6:9: services.web.ports[1]: host port 70000 out of range 1-65535"],
        ),
        (
            """\
            services:
              a:
                image: x
                depends_on: [b]
              b:
                image: x
                depends_on:
                  a: {condition: service_healthy}
            """,
            ["app.yaml:4:18: services.a.depends_on[0]: dependency cycle: a -> b -> a"],
        ),
        (
            """\
            services:
              web:
                image: x
                build: .
                secrets: [s]
            secrets: {s: {file: ./s}}
            """,
            [
                "app.yaml:4:5: services.web.build: unsupported: build (app.yaml:4)",
                "app.yaml:5:5: services.web.secrets: unsupported: secrets (app.yaml:5)",
                "app.yaml:6:1: secrets: unsupported: secrets (app.yaml:6)",
            ],
        ),
        (
            """\
            services:
              web:
                image: x
                healthcheck:
                  test: [CMD, "true"]
                  interval: 1x
                stop_grace_period: 10
                deploy:
                  resources:
                    limits: {memory: 12q}
            """,
            [
                "app.yaml:6:17: services.web.healthcheck.interval: bad duration '1x': expected e.g. 10s, 1m30s, 1h, 500ms",
                "app.yaml:10:26: services.web.deploy.resources.limits.memory: bad size '12q': expected bytes or e.g. 512m, 1g, 64k",
            ],
        ),
        (
            """\
            services:
              web:
                image: x
                deploy:
                  replicas: -1
                  update_config: {order: sideways}
            """,
            [
                "app.yaml:5:17: services.web.deploy.replicas: Input should be greater than or equal to 0, got -1",
                "app.yaml:6:30: services.web.deploy.update_config.order: Input should be 'stop-first' or 'start-first', got 'sideways'",
            ],
        ),
        (
            """\
            services:
              web:
                image: ${REGISTRY:?set REGISTRY to the registry host}/web:1
            """,
            ["app.yaml:3:12: services.web.image: required variable REGISTRY is missing a value: set REGISTRY to the registry host"],
        ),
        (
            """\
            services:
              web:
                image: x
                environment: {PRICE: 5$}
            """,
            ["app.yaml:4:26: services.web.environment.PRICE: invalid interpolation: '$' must be followed by a "
             "variable name or '{' (write '$$' for a literal '$')"],
        ),
        (
            """\
            services:
              web:
                image: x
                ports: ["8080:80"]
              api:
                image: y
                ports: ["8080:81/tcp"]
            """,
            ["app.yaml:7:13: services.api.ports[0]: host port 8080/tcp is already published by service 'web'"],
        ),
        (
            """\
            services:
              web:
                image: x
                depends_on: [db]
            """,
            ["app.yaml:4:18: services.web.depends_on[0]: depends on unknown service 'db'"],
        ),
        (
            """\
            services:
              web_1-:
                image: x
            """,
            ["app.yaml:2:3: services.web_1-: bad name 'web_1-': must match [a-zA-Z0-9][a-zA-Z0-9_.-]*, be at "
             "most 63 characters, and not contain '..' or end in '.' or '-'"],
        ),
        (
            """\
            services:
              web:
                command: run
            """,
            ["app.yaml:2:3: services.web: missing required key 'image' (Fusion runs images, it does not build them)"],
        ),
        (
            """\
            services:
              web:
                image: x
                deploy:
                  placement:
                    constraints: ["zone=a"]
            """,
            ["app.yaml:6:23: services.web.deploy.placement.constraints[0]: bad constraint 'zone=a': expected "
             "e.g. node.hostname==h1 or node.labels.zone!=b"],
        ),
        (
            """\
            services:
              web:
                image: x
                deploy: {mode: global}
                ports: [{target: 80, published: 80, mode: ingress}]
            """,
            [
                "app.yaml:4:14: services.web.deploy.mode: unsupported: deploy.mode: global (app.yaml:4)",
                "app.yaml:5:41: services.web.ports[0].mode: unsupported: ports mode: ingress (app.yaml:5)",
            ],
        ),
        (
            """\
            services:
              web:
                image: x
                tmpfs: /run
                volumes: ["data:/data"]
            """,
            [
                "app.yaml:5:15: services.web.volumes[0]: volume 'data' is not declared under top-level volumes",
            ],
        ),
        (
            """\
            services:
              web:
                image: x
                volumes: ["./x:relative"]
                restart: sometimes
            """,
            [
                "app.yaml:4:15: services.web.volumes[0]: bad target 'relative': a path in the container must be absolute",
                "app.yaml:5:14: services.web.restart: bad restart 'sometimes': expected no, always, on-failure[:N] or unless-stopped",
            ],
        ),
        (
            """\
            services:
              web:
                image: x
              web:
                image: y
            """,
            ["app.yaml:4:3: services.web: duplicate key 'web' (first at line 2)"],
        ),
        (
            """\
            services:
              web:
                image: x
                  bad: indent
            """,
            ["app.yaml:4:10: invalid YAML: mapping values are not allowed here"],
        ),
        ("services: {}\n", ["app.yaml:1:11: services: expected a mapping of service names to services"]),
        ("- a list\n", ["app.yaml:1:1: a Compose file must be a mapping with a `services` key"]),
        ("name: x\n", ["app.yaml:1:1: no `services`: a Compose file needs at least one service"]),
        (
            """\
            services:
              a:
                image: x
                x-fusion: {min_available: 2, links: [ghost], budget: 1}
            """,
            ["app.yaml:4:50: services.a.x-fusion.budget: unknown key 'budget'"],
        ),
        (
            """\
            services:
              a:
                image: x
                x-fusion: {min_available: 2, links: [ghost]}
            """,
            [
                "app.yaml:4:16: services.a.x-fusion.min_available: min_available 2 is more than replicas 1",
                "app.yaml:4:42: services.a.x-fusion.links[0]: links to unknown service 'ghost'",
            ],
        ),
    ],
)  # fmt: skip
def test_errors(text: str, expected: list[str]) -> None:
    assert errors(text) == expected


def test_json_errors_have_positions() -> None:
    text = '{\n  "services": {\n    "web": {\n      "image": "x",\n      "ports": ["8080:80", 99999]\n    }\n  }\n}\n'
    assert errors(text, filename="app.json") == [
        "app.json:5:28: services.web.ports[1]: container port 99999 out of range 1-65535"
    ]
    assert errors('{"services": {"web": {"image": "x",}}}', filename="app.json") == [
        "app.json:1:36: invalid JSON: Expecting property name enclosed in double quotes"
    ]
    assert errors('{"services": {"web": {"image": "x", "image": "y"}}}', filename="app.json") == [
        "app.json:1:37: services.web.image: duplicate key 'image' (first at line 1)"
    ]


def test_every_unsupported_feature_is_rejected_not_dropped() -> None:
    from specs.compose import SERVICE_UNSUPPORTED

    for key in SERVICE_UNSUPPORTED:
        text = f"services:\n  s:\n    image: i\n    {key}: x\n"
        assert errors(text) == [f"app.yaml:4:5: services.s.{key}: unsupported: {key} (app.yaml:4)"], key


def test_hints() -> None:
    with pytest.raises(SpecError) as info:
        load("services:\n  s:\n    image: i\n    mem_limit: 1g\n")
    assert info.value.hint == "use deploy.resources.limits"
    with pytest.raises(SpecError) as info:
        load("services:\n  s:\n    image: i\n    enviroment: {}\n")
    assert info.value.hint == "did you mean 'environment'?"


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"missing\.yaml: cannot read: No such file or directory"):
        load_app(tmp_path / "missing.yaml", env={})
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe")
    with pytest.raises(SpecError, match="not UTF-8"):
        load_app(tmp_path / "bin.yaml", env={})


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("user: a b", "app.yaml:4:11: services.s.user: bad user 'a b'"),
        ("hostname: -x", "app.yaml:4:15: services.s.hostname: bad host name '-x'"),
        ("stop_signal: 'SIG TERM'", "app.yaml:4:18: services.s.stop_signal: bad signal 'SIG TERM'"),
        ("working_dir: rel", "app.yaml:4:18: services.s.working_dir: bad path 'rel': must be absolute"),
        ("working_dir: \"/a\\nb\"", "app.yaml:4:18: services.s.working_dir: control characters (such as a newline) are not allowed: '/a\\nb'"),
        ("volumes: ['/a,b:/c']", "app.yaml:4:15: services.s.volumes[0]: bad path '/a,b': ':' and ',' cannot be passed to the container engine"),
        ("volumes: ['v:/c']", "app.yaml:4:15: services.s.volumes[0]: volume 'v' is not declared under top-level volumes"),
        ("volumes: ['-v:/c']", "app.yaml:4:15: services.s.volumes[0]: bad volume name '-v': must match [a-zA-Z0-9][a-zA-Z0-9_.-]*, be at most 63 characters, and not contain '..' or end in '.' or '-'"),
        ("ports: ['localhost:8080:80']", "app.yaml:4:13: services.s.ports[0]: bad host_ip 'localhost': expected an IP address"),
        ("ports: [{target: 80, host_ip: nope}]", "app.yaml:4:13: services.s.ports[0]: bad host_ip 'nope': expected an IP address"),
        ("cap_add: ['9x']", "app.yaml:4:15: services.s.cap_add[0]: bad capability '9x'"),
        ("tmpfs: ['/t:size=0']", "app.yaml:4:13: services.s.tmpfs[0]: bad size '0': must be more than 0"),
        ("tmpfs: ['/t:uid=0']", "app.yaml:4:13: services.s.tmpfs[0]: unsupported tmpfs option 'uid=0': use size=, mode=, ro or rw"),
        ("healthcheck: {test: [SHELL, x]}", "app.yaml:4:25: services.s.healthcheck.test: expected a string, [\"CMD\", ...], [\"CMD-SHELL\", \"...\"] or [\"NONE\"]"),
        ("healthcheck: {test: [CMD]}", "app.yaml:4:18: services.s.healthcheck: test has no command"),
        ("depends_on: {x: {condition: service_ready}}", "app.yaml:4:33: services.s.depends_on.x.condition: Input should be 'service_started', 'service_healthy' or 'service_completed_successfully', got 'service_ready'"),
        ("networks: {n: {ipv4_address: 10.0.0.2}}", "app.yaml:4:20: services.s.networks.n.ipv4_address: unsupported: ipv4_address (app.yaml:4)"),
        ("environment: [1]", "app.yaml:4:19: services.s.environment[0]: expected VAR=value"),
        ("env_file: missing.env", "app.yaml:4:15: services.s.env_file: env file '/nonexistent/missing.env' not found"),
    ],
)  # fmt: skip
def test_value_errors(line: str, expected: str) -> None:
    text = f"services:\n  x: {{image: x}}\n  s:\n    {line}\n    image: i\n"
    with pytest.raises((SpecError, SpecErrors)) as info:
        load_app_text(text, "app.yaml", env={}, base_dir=Path("/nonexistent"))
    assert [str(e) for e in error_list(info.value)] == [expected]


def test_names_differing_only_in_case() -> None:
    assert errors("services:\n  web: {image: i}\n  Web: {image: i}\n") == [
        "app.yaml:3:3: services.Web: 'Web' and 'web' differ only in case (DNS names ignore case)"
    ]
