"""A FleetLock-protocol client (the reboot-lock protocol Zincati speaks): the agent's side of
``orchestrator.upgrade.fleetlock`` (or of any FleetLock server, e.g. Airlock).

Side effects: HTTP POSTs (stdlib ``urllib``) in :meth:`FleetLockClient.pre_reboot` and
:meth:`FleetLockClient.steady_state`. :func:`request` and :func:`parse_reply` are pure.

Protocol: ``POST <url>/v1/pre-reboot`` asks for a reboot slot (recursive: asking again while
holding one is granted again), ``POST <url>/v1/steady-state`` gives it back (granted also when
none is held). Both send the header ``fleet-lock-protocol: true`` and the JSON body
``{"client_params": {"id": "<id>", "group": "<group>"}}``. The server answers HTTP 200 with
``{"kind": "ok", ...}``, or an error whose ``kind`` says why; each kind is a typed exception here:
``failed_lock`` -> :class:`LockRefused`, ``failed_unlock`` -> :class:`UnlockRefused`,
``bad_request``/``not_found``/``method_not_allowed`` -> :class:`ProtocolError`, ``internal_error``
or any other failure of the server -> :class:`ServerError`, no answer -> :class:`Unreachable`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from specs.errors import FusionError, InputError

PRE_REBOOT = "/v1/pre-reboot"
STEADY_STATE = "/v1/steady-state"
HEADERS = {"fleet-lock-protocol": "true", "Content-Type": "application/json"}
TIMEOUT = 10.0
MAX_REPLY = 64 * 1024


class FleetLockError(FusionError):
    """A FleetLock request that did not succeed: ``kind`` is the protocol's error kind."""

    def __init__(self, kind: str, message: str, *, status: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.kind = kind
        self.status = status


class LockRefused(FleetLockError):
    """``failed_lock``: every reboot slot is held (by other hosts or a rollout): try again later."""


class UnlockRefused(FleetLockError):
    """``failed_unlock``: the slot cannot be released by this client (a rollout owns it)."""


class ProtocolError(FleetLockError):
    """``bad_request``, ``not_found``, ``method_not_allowed``: the server did not understand us."""


class ServerError(FleetLockError):
    """``internal_error`` (e.g. the server cannot reach etcd) or an answer that is not FleetLock's."""


class Unreachable(FleetLockError):
    """No answer: connection refused, timeout, name not resolved."""


_KINDS: dict[str, type[FleetLockError]] = {
    "failed_lock": LockRefused,
    "failed_unlock": UnlockRefused,
    "bad_request": ProtocolError,
    "not_found": ProtocolError,
    "method_not_allowed": ProtocolError,
    "internal_error": ServerError,
}


def check_url(url: str) -> str:
    """The server's base URL without a trailing slash; InputError unless it is http(s)://HOST[...]."""
    base = url.strip().rstrip("/")
    scheme, sep, rest = base.partition("://")
    if not sep or scheme not in ("http", "https") or not rest or rest.startswith("/"):
        raise InputError(f"FleetLock URL {url!r} is not http://HOST[:PORT][/PATH]",
                         hint="e.g. FUSION_FLEETLOCK_URL=http://10.0.0.1:8095")
    return base


def request(base_url: str, path: str, client_id: str, group: str) -> urllib.request.Request:
    """The POST for ``path`` (pure: nothing is sent)."""
    body = json.dumps({"client_params": {"id": client_id, "group": group}}).encode()
    return urllib.request.Request(f"{base_url}{path}", data=body, headers=dict(HEADERS), method="POST")


def parse_reply(status: int, body: bytes, what: str) -> str:
    """The ``value`` of a successful reply; raises the error kind's exception otherwise."""
    try:
        doc = json.loads(body)
        kind, value = doc["kind"], doc.get("value", "")
        if not isinstance(kind, str) or not isinstance(value, str):
            raise TypeError("kind and value must be strings")
    except (ValueError, KeyError, TypeError) as e:
        raise ServerError("internal_error", f"{what}: HTTP {status} without a FleetLock reply ({e})",
                          status=status) from e
    if status == 200 and kind == "ok":
        return value
    cls = _KINDS.get(kind, ServerError)
    raise cls(kind, f"{what}: {kind}: {value or f'HTTP {status}'}", status=status)


@dataclass(frozen=True)
class FleetLockClient:
    """One machine (``client_id``) of one group talking to the server at ``url``."""

    url: str
    client_id: str
    group: str = "default"
    timeout: float = TIMEOUT

    def pre_reboot(self) -> str:
        """Take (or keep) a reboot slot; raises LockRefused when none is free."""
        return self._post(PRE_REBOOT)

    def steady_state(self) -> str:
        """Give the reboot slot back (succeeds also when none was held)."""
        return self._post(STEADY_STATE)

    def _post(self, path: str) -> str:
        base = check_url(self.url)
        what = f"FleetLock {path} at {base}"
        try:
            with urllib.request.urlopen(request(base, path, self.client_id, self.group), timeout=self.timeout) as r:
                return parse_reply(r.status, r.read(MAX_REPLY), what)
        except urllib.error.HTTPError as e:
            try:
                body = e.read(MAX_REPLY)
            except (OSError, AttributeError):
                body = b""
            finally:
                e.close()
            return parse_reply(e.code, body, what)
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise Unreachable("unreachable", f"{what}: no answer ({reason})",
                              hint="is the server running (`fusion fleetlock serve`)?") from e
