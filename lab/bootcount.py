"""Boot loader entries and boot counting, the way a boot loader and greenboot do it.

Pure core: :func:`parse_entry`, :func:`order_entries` (Boot Loader Specification order: the
highest ``version`` first, which is how OSTree marks its default), :func:`choose_boot`,
:func:`boot_succeeded`, :func:`boot_failed`.

Boot counting: a deployment that has never come up healthy is *on trial*. Each boot of it uses
one try; when it fails ``max_tries`` times it is *failed* and the boot loader skips it, booting the
next entry (the previous deployment) instead: the fallback. A deployment that once came up healthy
is *good* and is booted without counting (like greenboot's ``boot_success``).

The persisted boot environment (our ``grubenv``) lives at ``SYSROOT/boot/fusion-bootenv.json``;
:func:`load_env` and :func:`save_env` are the only side effects.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class BootEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str
    title: str = ""
    version: str = ""
    options: str = ""
    linux: str = ""

    @property
    def ostree_path(self) -> str | None:
        """The ``ostree=`` kernel argument: ``/ostree/boot.N/OS/BOOTCSUM/SERIAL``."""
        m = re.search(r"(?:^|\s)ostree=(\S+)", self.options)
        return m.group(1) if m else None


class BootEnv(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    good: tuple[str, ...] = ()        # deployments (``CSUM.SERIAL``) that came up healthy
    failed: tuple[str, ...] = ()      # deployments that used all their tries
    tries: dict[str, int] = {}        # failed boots so far, per deployment on trial


class BootChoice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    entry: BootEntry
    deployment: str
    on_trial: bool
    fallback_from: str | None = None  # the default deployment we did not boot, if any


def parse_entry(file: str, text: str) -> BootEntry:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        if key in ("title", "version", "options", "linux"):
            fields[key] = value.strip()
    return BootEntry(file=file, **fields)


def _version_key(v: str) -> list[tuple[int, int | str]]:
    # Natural order: numbers compare as numbers ("10" > "9").
    return [(0, int(p)) if p.isdigit() else (1, p) for p in re.findall(r"\d+|[^\d]+", v)]


def order_entries(entries: list[BootEntry]) -> list[BootEntry]:
    """Default first: highest version, then file name (the BLS rule for entries without sort-key)."""
    return sorted(entries, key=lambda e: (_version_key(e.version), e.file), reverse=True)


def choose_boot(entries: list[tuple[BootEntry, str]], env: BootEnv) -> BootChoice | None:
    """Pick what to boot from (entry, deployment) pairs in boot order; ``None`` if nothing is left."""
    if not entries:
        return None
    default = entries[0][1]
    for entry, deployment in entries:
        if deployment in env.failed:
            continue
        return BootChoice(
            entry=entry,
            deployment=deployment,
            on_trial=deployment not in env.good,
            fallback_from=default if deployment != default else None,
        )
    return None


def boot_succeeded(env: BootEnv, deployment: str) -> BootEnv:
    tries = {k: v for k, v in env.tries.items() if k != deployment}
    good = env.good if deployment in env.good else (*env.good, deployment)
    return env.model_copy(update={"good": good, "tries": tries})


def boot_failed(env: BootEnv, deployment: str, max_tries: int) -> BootEnv:
    n = env.tries.get(deployment, 0) + 1
    tries = dict(env.tries)
    failed = env.failed
    if n >= max_tries:
        tries.pop(deployment, None)
        if deployment not in failed:
            failed = (*failed, deployment)
    else:
        tries[deployment] = n
    return env.model_copy(update={"tries": tries, "failed": failed})


def forget_missing(env: BootEnv, deployments: list[str]) -> BootEnv:
    """Drop what we know about deployments that are gone (undeployed or cleaned up): a later
    deployment that reuses the name starts on trial."""
    keep = set(deployments)
    return BootEnv(good=tuple(d for d in env.good if d in keep), failed=tuple(d for d in env.failed if d in keep),
                   tries={d: n for d, n in env.tries.items() if d in keep})


# --- side effects ----------------------------------------------------------------------------

def env_path(sysroot: Path) -> Path:
    return sysroot / "boot" / "fusion-bootenv.json"


def load_env(sysroot: Path) -> BootEnv:
    try:
        return BootEnv.model_validate_json(env_path(sysroot).read_text())
    except (FileNotFoundError, ValueError):
        return BootEnv()


def save_env(sysroot: Path, env: BootEnv) -> None:
    path = env_path(sysroot)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(env.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_entries(sysroot: Path) -> list[tuple[BootEntry, str]]:
    """The boot loader's view: entries in boot order, each with the deployment (``CSUM.SERIAL``)
    its ``ostree=`` argument points at. Entries whose target is missing are skipped."""
    loader = sysroot / "boot" / "loader" / "entries"
    if not loader.is_dir():
        return []
    entries = [parse_entry(p.name, p.read_text()) for p in sorted(loader.glob("*.conf"))]
    out: list[tuple[BootEntry, str]] = []
    for e in order_entries(entries):
        if not e.ostree_path:
            continue
        target = sysroot / e.ostree_path.lstrip("/")
        try:
            resolved = target.resolve(strict=True)
        except (FileNotFoundError, RuntimeError):
            continue
        out.append((e, resolved.name))
    return out
