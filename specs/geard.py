"""geard deployment JSON -> `specs.app.App`. Pure: no I/O.

The format is geard's (github.com/openshift/geard, package ``deployment``)::

    {"Containers": [{"Name": "web", "Image": "...", "Count": 2,
                     "PublicPorts": [{"Internal": 8080, "External": 0}],
                     "Links": [{"To": "db"}, {"To": "web"}],
                     "Environment": {"KEY": "value"}}]}

Keys are matched the way Go's encoding/json matches struct fields: an exact match first, otherwise
case-insensitively (with Unicode simple folding, so the Kelvin sign matches ``k`` and the long s
matches ``s``). Unlike Go, an unknown key is an error, and two keys that match the same field
(``"name"`` and ``"Name"``) are an error rather than last-one-wins.

Mapping into the model: Name -> the service name; Image -> image; Count -> deploy.replicas (a missing
Count is Go's zero value, 0); PublicPorts -> ports (Internal is the container port, External the host
port, 0 meaning "any free port"; a fixed External with Count > 1 sets
placement.max_replicas_per_node 1, since geard reserves host ports per host); Links -> x_fusion.links
(discovery only, never start order, a container may link to itself; Ports narrows the linked ports;
the target must have PublicPorts, as geard requires); Environment -> environment (a map, or a list of
{"Name", "Value"}). geard features Fusion does not do (Notify, Affinity, link NonLocal/MatchPort/
AliasPorts, and the deployment-state keys Instances, IdPrefix, RandomizeIds) are rejected as
``unsupported``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from specs.app import DEFER_CHECKS, App, name_problem
from specs.source import Collector, Doc, Path, pydantic_message

_TOP_FIELDS = ("Containers", "Instances", "IdPrefix", "RandomizeIds")
_CONTAINER_FIELDS = ("Name", "Image", "PublicPorts", "Links", "Notify", "Count", "Affinity", "Environment")
_LINK_FIELDS = ("To", "NonLocal", "MatchPort", "Ports", "AliasPorts")
_PORT_FIELDS = ("Internal", "External")
_ENV_FIELDS = ("Name", "Value")
_FOLD = {"\u212a": "k", "\u017f": "s"}


def _fold(text: str) -> str:
    return "".join(_FOLD.get(c, c.lower() if c.isascii() else c) for c in text)


def match_fields(
    value: dict[str, Any], path: Path, fields: tuple[str, ...], out: Collector
) -> dict[str, tuple[Any, Path]]:
    """Go's field matching: {field: (value, path of the key as written)}; unknown/duplicate reported."""
    found: dict[str, tuple[Any, Path]] = {}
    for key, item in value.items():
        field = key if key in fields else next((f for f in fields if _fold(key) == f.lower()), None)
        if field is None:
            out.error((*path, key), f"unknown key {key!r} (expected one of {', '.join(fields)})", at="key")
        elif field in found:
            first = found[field][1][-1]
            out.error((*path, key), f"duplicate key {key!r}: {first!r} already sets {field}", at="key")
        else:
            found[field] = (item, (*path, key))
    return found


def is_geard(doc: Doc) -> bool:
    return isinstance(doc.data, dict) and any(_fold(k) == "containers" for k in doc.data)


def geard_to_app(doc: Doc, *, default_name: str) -> App:
    """A parsed geard deployment -> a checked `App`, or SpecError/SpecErrors with positions."""
    out = Collector(doc)
    top = match_fields(doc.data, (), _TOP_FIELDS, out)
    for key, hint in (
        ("Instances", "Fusion keeps running instances in its own store"),
        ("IdPrefix", "Fusion names containers itself"),
        ("RandomizeIds", "Fusion names containers itself"),
    ):
        if key in top and top[key][0] not in (None, [], "", False):
            out.unsupported(top[key][1], f"geard {key}", hint)
    containers, cpath = top.get("Containers", (None, ()))
    if not isinstance(containers, list) or not containers:
        out.error(cpath, "expected a non-empty list of containers")
        out.raise_if_any()
    services: dict[str, Any] = {}
    origin: dict[str, Path] = {}
    fields_at: dict[str, dict[str, tuple[Any, Path]]] = {}
    for i, c in enumerate(containers):
        path: Path = (*cpath, i)
        if not isinstance(c, dict):
            out.error(path, "expected an object")
            continue
        f = match_fields(c, path, _CONTAINER_FIELDS, out)
        name, npath = f.get("Name", (None, path))
        if not isinstance(name, str) or not name:
            out.error(npath, "missing Name" if name is None else "Name must be a non-empty string")
            continue
        if (why := name_problem(name)) is not None:
            out.error(npath, why)
            continue
        if name in services:
            out.error(npath, f"container {name!r} is defined twice")
            continue
        origin[name] = path
        fields_at[name] = f
        services[name] = _service(f, path, out)
    # geard: a link's target must publish ports (as written: a bad port was reported already)
    for name, svc in services.items():
        lpath = fields_at[name].get("Links", (None, ()))[1]
        for j, link in enumerate(svc.get("x_fusion", {}).get("links", [])):
            target = fields_at.get(link["to"])
            if target is not None and not target.get("PublicPorts", (None, ()))[0]:
                out.error((*lpath, j), f"target {link['to']!r} has no PublicPorts to link to")
    out.raise_if_any()
    try:
        app = App.model_validate({"name": default_name, "services": services}, context={DEFER_CHECKS: True})
    except ValidationError as e:
        for err in e.errors():
            out.error(_raw_loc(tuple(err["loc"]), origin, fields_at), pydantic_message(err))
        out.raise_if_any()
        raise  # pragma: no cover
    for p in app.problems():
        out.error(_raw_loc(p.loc, origin, fields_at), p.message, at="key")
    out.raise_if_any()
    return app


def _raw_loc(
    loc: tuple[str | int, ...], origin: dict[str, Path], fields_at: dict[str, dict[str, tuple[Any, Path]]]
) -> Path:
    if len(loc) < 2 or loc[0] != "services" or str(loc[1]) not in origin:
        return ()
    name = str(loc[1])
    f = fields_at[name]
    rest = loc[2:]
    if rest[:1] == ("ports",) and "PublicPorts" in f:
        return (*f["PublicPorts"][1], *rest[1:2])
    if rest[:2] == ("x-fusion", "links") and "Links" in f:
        return (*f["Links"][1], *rest[2:3])
    if rest[:1] == ("deploy",) and "Count" in f:
        return f["Count"][1]
    if rest[:1] == ("image",) and "Image" in f:
        return f["Image"][1]
    if rest[:1] == ("environment",) and "Environment" in f:
        return f["Environment"][1]
    return f["Name"][1] if "Name" in f else origin[name]


def _service(f: dict[str, tuple[Any, Path]], path: Path, out: Collector) -> dict[str, Any]:
    svc: dict[str, Any] = {}
    image, ipath = f.get("Image", (None, path))
    if not isinstance(image, str) or not image:
        out.error(ipath, "missing Image" if image is None else "Image must be a non-empty string")
    else:
        svc["image"] = image
    count, cnt_path = f.get("Count", (0, path))
    if count is None:
        count = 0
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        out.error(cnt_path, f"Count must be a whole number >= 0, got {count!r}")
        count = 0
    deploy: dict[str, Any] = {"replicas": count}
    for key in ("Notify", "Affinity"):
        if key in f and f[key][0] not in (None, False, ""):
            out.unsupported(f[key][1], f"geard {key}")
    ports: list[dict[str, Any]] = []
    pp, ppath = f.get("PublicPorts", (None, path))
    for j, item in enumerate(_list(pp, ppath, out)):
        p = (*ppath, j)
        if not isinstance(item, dict):
            out.error(p, 'expected {"Internal": PORT, "External": PORT}')
            continue
        pf = match_fields(item, p, _PORT_FIELDS, out)
        internal, ip = pf.get("Internal", (None, p))
        external, ep = pf.get("External", (0, p))
        if not _is_port(internal):
            out.error(ip, f"Internal must be a port 1-65535, got {internal!r}")
            continue
        if external not in (None, 0) and not _is_port(external):
            out.error(ep, f"External must be 0 or a port 1-65535, got {external!r}")
            continue
        ports.append({"target": internal, "published": external or None})
    if ports:
        svc["ports"] = ports
        if count > 1 and any(p["published"] for p in ports):
            deploy["placement"] = {"max_replicas_per_node": 1}
    svc["deploy"] = deploy
    links: list[dict[str, Any]] = []
    lv, lpath = f.get("Links", (None, path))
    for j, item in enumerate(_list(lv, lpath, out)):
        p = (*lpath, j)
        if not isinstance(item, dict):
            out.error(p, 'expected {"To": NAME}')
            continue
        lf = match_fields(item, p, _LINK_FIELDS, out)
        for key in ("NonLocal", "MatchPort", "AliasPorts"):
            if key in lf and lf[key][0] not in (None, False, []):
                out.unsupported(lf[key][1], f"geard link {key}")
        to, tpath = lf.get("To", (None, p))
        if not isinstance(to, str) or not to:
            out.error(tpath, "missing To" if to is None else "To must be a container name")
            continue
        link: dict[str, Any] = {"to": to}
        lp, lpp = lf.get("Ports", (None, p))
        link_ports = []
        for k, port in enumerate(_list(lp, lpp, out)):
            if not _is_port(port):
                out.error((*lpp, k), f"expected a port 1-65535, got {port!r}")
            else:
                link_ports.append(port)
        if link_ports:
            link["ports"] = link_ports
        links.append(link)
    if links:
        svc["x_fusion"] = {"links": links}
    ev, epath = f.get("Environment", (None, path))
    if ev is not None:
        svc["environment"] = _environment(ev, epath, out)
    return svc


def _environment(value: Any, path: Path, out: Collector) -> dict[str, str]:
    env: dict[str, str] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(v, str | int | float) or isinstance(v, bool):
                out.error((*path, k), f"expected a string, got {v!r}")
            else:
                env[k] = str(v)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            p = (*path, i)
            if not isinstance(item, dict):
                out.error(p, 'expected {"Name": VAR, "Value": value}')
                continue
            ef = match_fields(item, p, _ENV_FIELDS, out)
            name, _ = ef.get("Name", (None, p))
            val, _ = ef.get("Value", ("", p))
            if not isinstance(name, str) or not name or not isinstance(val, str):
                out.error(p, 'expected {"Name": VAR, "Value": value} with string values')
            else:
                env[name] = val
    else:
        out.error(path, "expected an object of VAR: value, or a list of {Name, Value}")
    return env


def _list(value: Any, path: Path, out: Collector) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        out.error(path, "expected a list")
        return []
    return value


def _is_port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535
