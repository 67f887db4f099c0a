"""Value grammars of the Compose Specification, and typed readers for loose YAML/JSON values.

Pure, no I/O. The ``parse_*`` functions take a value and raise ValueError with a message for people;
the ``as_*`` readers take a value and its key path and raise `Invalid` (path + message), which the
Compose loader (`specs.compose`) reports with the file position of that path.

Grammars (the Compose Specification's):
  durations  "1h30m", "1m30s", "10s", "1.5s", "250ms", "100us", "0"; a bare number means seconds
  sizes      bytes as an int, or "512", "512b", "64k"/"64kb", "512m"/"512mb", "1g"/"1gb" (powers of 1024,
             any case, decimals allowed: "1.5g")
  ports      [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp]; ranges "8000-8001:80-81"; IPv6 as "[::1]:80:80"
  constraints  "node.hostname==NAME", "node.labels.KEY==VALUE" (or "!=")
  file modes (tmpfs)  octal digits, 1777 or "0755" (an integer's decimal digits are read as octal)
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from specs.app import Constraint, Port, name_problem
from specs.source import Path


class Invalid(Exception):
    """Raised inside the normalizer for one bad value; caught per key and reported."""

    def __init__(self, path: Path, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.hint = hint


# -- small value parsers (pure; raise ValueError with a message for people) --------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> float:
    """A Compose duration -> seconds. ``"1m30s"`` -> 90.0; a bare number is seconds."""
    if isinstance(value, bool):
        raise ValueError(f"bad duration {value!r}: expected e.g. 10s, 1m30s, 1h, 500ms")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"bad duration {value!r}: must not be negative")
        return float(value)
    text = str(value).strip()
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(text):
        m = _DURATION_PART.match(text, pos)
        if m is None:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos == 0 or pos != len(text):
        raise ValueError(f"bad duration {text!r}: expected e.g. 10s, 1m30s, 1h, 500ms")
    return total


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)b?$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_bytes(value: object) -> int:
    """A Compose byte size -> bytes. ``"512m"`` -> 536870912; an int is bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"bad size {value!r}: must be more than 0")
        return value
    m = _SIZE.match(str(value).strip()) if isinstance(value, str) else None
    if m is None:
        raise ValueError(f"bad size {value!r}: expected bytes or e.g. 512m, 1g, 64k")
    size = int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
    if size <= 0:
        raise ValueError(f"bad size {value!r}: must be more than 0")
    return size


_CONSTRAINT = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*(==|!=)\s*(\S(?:.*\S)?)\s*$")


def parse_constraint(text: str) -> Constraint:
    """``"node.labels.zone == a"`` -> Constraint(label="node.labels.zone", op="==", value="a")."""
    m = _CONSTRAINT.match(text)
    if m is None:
        raise ValueError(f"bad constraint {text!r}: expected e.g. node.hostname==h1 or node.labels.zone!=b")
    label, op, value = m.groups()
    if label != "node.hostname" and not (label.startswith("node.labels.") and len(label) > 12):
        raise ValueError(f"unsupported constraint attribute {label!r}: use node.hostname or node.labels.KEY")
    return Constraint.model_validate({"label": label, "op": op, "value": value})


def port_number(text: str, what: str) -> int:
    if not text.isdigit():
        raise ValueError(f"bad {what} {text!r}: expected a number 1-65535")
    n = int(text)
    if not 1 <= n <= 65535:
        raise ValueError(f"{what} {n} out of range 1-65535")
    return n


def _port_range(text: str, what: str) -> list[int]:
    lo, sep, hi = text.partition("-")
    if not sep:
        return [port_number(text, what)]
    a, b = port_number(lo, what), port_number(hi, what)
    if b < a:
        raise ValueError(f"bad {what} range {text!r}: end before start")
    return list(range(a, b + 1))


def parse_port(value: object) -> list[Port]:
    """Compose's short port syntax (or a bare int) -> Ports (a range gives one per port)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f'bad port {value!r}: expected e.g. 80, "8080:80" or "127.0.0.1:8080:80/udp"')
    text = str(value).strip()
    text, _, protocol = text.partition("/")
    protocol = protocol or "tcp"
    if protocol not in ("tcp", "udp"):
        raise ValueError(f"bad protocol {protocol!r}: expected tcp or udp")
    host_ip: str | None = None
    if text.startswith("["):  # [IPv6]:published:target
        close = text.find("]:")
        if close < 0:
            raise ValueError(f"bad port {value!r}: expected [IPV6]:HOST_PORT:CONTAINER_PORT")
        host_ip, text = text[1:close], text[close + 2 :]
        parts = ["", *text.split(":")] if text.count(":") == 1 else text.split(":")
        parts[0] = host_ip
    else:
        parts = text.split(":")
        if len(parts) == 3:
            host_ip = parts[0] or None
    if len(parts) == 1:
        targets, published = _port_range(parts[0], "container port"), None
    elif len(parts) in (2, 3):
        targets = _port_range(parts[-1], "container port")
        published = _port_range(parts[-2], "host port") if parts[-2] else None
    else:
        raise ValueError(f"bad port {value!r}: expected [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]")
    if published is not None and len(published) != len(targets):
        raise ValueError(
            f"bad port {value!r}: the host port range and the container port range must have the same length"
        )
    return [
        Port(target=t, published=published[i] if published else None, host_ip=host_ip, protocol=protocol)  # type: ignore[arg-type]
        for i, t in enumerate(targets)
    ]


# -- value helpers (raise Invalid at the value's path) -------------------------------------------------


def scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def as_str(value: Any, path: Path) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise Invalid(path, f"expected a string, got {kind_of(value)}")


def as_bool(value: Any, path: Path) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise Invalid(path, f"expected true or false, got {value!r}")


def as_mapping(value: Any, path: Path) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(path, f"expected a mapping, got {kind_of(value)}")
    return value


def as_list(value: Any, path: Path) -> list[Any]:
    if not isinstance(value, list):
        raise Invalid(path, f"expected a list, got {kind_of(value)}")
    return value


def kind_of(value: Any) -> str:
    return {dict: "a mapping", list: "a list", type(None): "nothing"}.get(type(value), repr(value))


def as_argv(value: Any, path: Path) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as e:
            raise Invalid(path, f"cannot split command: {e}") from None
    return [as_str(v, (*path, i)) for i, v in enumerate(as_list(value, path))]


def as_str_map(value: Any, path: Path) -> dict[str, str]:
    if isinstance(value, list):
        out: dict[str, str] = {}
        for i, item in enumerate(value):
            k, _, v = as_str(item, (*path, i)).partition("=")
            out[k] = v
        return out
    out = {}
    for k, v in as_mapping(value, path).items():
        if isinstance(v, dict | list):
            raise Invalid((*path, k), "expected a plain value")
        out[k] = scalar(v)
    return out


def as_caps(value: Any, path: Path) -> list[str]:
    out = []
    for i, item in enumerate(as_list(value, path)):
        cap = as_str(item, (*path, i)).upper().removeprefix("CAP_")
        if not re.fullmatch(r"[A-Z_]+", cap):
            raise Invalid((*path, i), f"bad capability {item!r}")
        out.append(cap)
    return out


def as_restart(value: Any, path: Path) -> dict[str, Any]:
    if value is False:  # YAML 1.1 reads a bare `no` as false
        return {"restart": "no"}
    text = as_str(value, path)
    policy, _, retries = text.partition(":")
    if policy not in ("no", "always", "on-failure", "unless-stopped") or (retries and policy != "on-failure"):
        raise Invalid(path, f"bad restart {text!r}: expected no, always, on-failure[:N] or unless-stopped")
    out: dict[str, Any] = {"restart": policy}
    if retries:
        if not retries.isdigit():
            raise Invalid(path, f"bad restart {text!r}: the retry count must be a number")
        out["restart_max_retries"] = int(retries)
    return out


def as_duration(value: Any, path: Path) -> float:
    try:
        return parse_duration(value)
    except ValueError as e:
        raise Invalid(path, str(e)) from None


def as_size(value: Any, path: Path) -> int:
    try:
        return parse_bytes(value)
    except ValueError as e:
        raise Invalid(path, str(e)) from None


def as_cpus(value: Any, path: Path) -> float:
    try:
        cpus = float(value)
    except (TypeError, ValueError):
        raise Invalid(path, f"bad cpus {value!r}: expected a number such as 0.5 or 2") from None
    if isinstance(value, bool) or cpus <= 0:
        raise Invalid(path, f"bad cpus {value!r}: expected a number more than 0")
    return cpus


def as_mode(value: Any, path: Path) -> int:
    """A file mode written in octal digits: ``1777`` or ``"0755"`` (a YAML int's digits are read as octal)."""
    text = as_str(value, path)
    if not re.fullmatch(r"[0-7]{3,4}", text):
        raise Invalid(path, f"bad mode {text!r}: expected octal such as 1777")
    return int(text, 8)


def as_target(value: Any, path: Path) -> str:
    target = as_str(value, path)
    if not target.startswith("/"):
        raise Invalid(path, f"bad target {target!r}: a path in the container must be absolute")
    return target


def as_volume_name(value: Any, path: Path) -> str:
    name = as_str(value, path)
    if (why := name_problem(name)) is not None:
        raise Invalid(path, why.replace("bad name", "bad volume name"))
    return name
