"""``.volume``, ``.network`` and ``.pod`` files → units, compared with podman 5.4.2's own output.

Each directory in ``test_quadlet_volume_network_pod_cases/`` is one run of the generator: the
Quadlet files (``QUADLET_UNIT_DIRS`` is the directory, or its subdirectories ``a``, ``b``... when it
has no Quadlet file of its own), and what the real ``/usr/libexec/podman/quadlet -dryrun`` printed
(``expected.out``, ``expected.err``, ``expected.rc``; recorded by
``tests/integration/test_quadlet_real_vnp.py`` with ``FUSION_UPDATE_GOLDEN=1``). Paths are
replaced by ``@CASE@`` and PIDs by ``[PID]`` so that the goldens do not depend on the checkout.

The generator runs in-process here (it reads the case files; nothing is written).
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest

from units.quadlet.common import QuadletContext, QuadletError, UnitInfo
from units.quadlet.generator import main
from units.quadlet.network import convert_network
from units.quadlet.pod import convert_pod
from units.quadlet.volume import convert_volume
from units.unitfile import UnitFile

CASES = Path(__file__).resolve().parent / "test_quadlet_volume_network_pod_cases"
QUADLET_EXTS = (".container", ".volume", ".network", ".pod", ".kube", ".image", ".build")


def case_names() -> list[str]:
    return sorted(p.name for p in CASES.iterdir() if p.is_dir())


def case_dirs(case: Path) -> list[str]:
    """The search directories of a case: itself, or its subdirectories when it has no unit file."""
    if any(p.name.endswith(QUADLET_EXTS) for p in case.iterdir()):
        return [str(case)]
    subs = sorted(str(p) for p in case.iterdir() if p.is_dir() and not p.name.endswith(".d"))
    return subs or [str(case)]


def normalize(text: str, case: Path, *, stderr: bool = False) -> str:
    """Make generator output independent of where the checkout is and of process ids."""
    text = text.replace(str(case), "@CASE@")
    if stderr:
        text = re.sub(r"quadlet-generator\[\d+\]", "quadlet-generator[PID]", text)
    return text


def comparable(text: str, case: Path) -> str:
    """The output as compared: exact, except in cases marked ``UNORDERED``.

    There podman writes some flags in Go map order (random from run to run), so each ``Exec*=``
    line is compared as the sorted list of its words.
    """
    if not (case / "UNORDERED").exists():
        return text
    lines = []
    for line in text.split("\n"):
        if line.startswith("Exec"):
            key, _, value = line.partition("=")
            line = key + "=" + " ".join(sorted(value.split(" ")))
        lines.append(line)
    return "\n".join(lines)


def run_ours(case: Path, args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    env = {"QUADLET_UNIT_DIRS": ":".join(case_dirs(case))}
    rc = main(args, env=env, stdout=out, stderr=err, prog="/usr/libexec/podman/quadlet")
    return rc, normalize(out.getvalue(), case), normalize(err.getvalue(), case, stderr=True)


@pytest.mark.parametrize("name", case_names())
def test_dryrun_output_is_podman_5_4_2s(name: str) -> None:
    case = CASES / name
    rc, out, err = run_ours(case, ["-dryrun", "unused"])
    assert comparable(out, case) == comparable((case / "expected.out").read_text(), case)
    assert rc == int((case / "expected.rc").read_text())
    assert err == (case / "expected.err").read_text()


def test_every_case_has_a_golden() -> None:
    missing = [n for n in case_names() if not (CASES / n / "expected.out").exists()]
    assert not missing


# -- the converters on their own ------------------------------------------------------------------


def _ctx(*units: UnitFile) -> QuadletContext:
    from units.quadlet.common import unit_info_for

    return QuadletContext(units={u.filename: unit_info_for(u) for u in units})


def test_volume_records_its_resource_name_for_later_files() -> None:
    vol = UnitFile.parse("[Volume]\nVolumeName=data\n", "db.volume", "/q/db.volume")
    ctx = _ctx(vol)
    service, warnings = convert_volume(vol, ctx)
    assert warnings == []
    assert service.filename == "db-volume.service"
    assert ctx.units["db.volume"] == UnitInfo(service_name="db-volume", resource_name="data")
    assert service.lookup_last_args("Service", "ExecStart") == [
        "/usr/bin/podman",
        "volume",
        "create",
        "--ignore",
        "data",
    ]


def test_network_and_pod_resolve_each_other() -> None:
    net = UnitFile.parse("[Network]\n", "front.network")
    pod = UnitFile.parse("[Pod]\nNetwork=front.network\n", "app.pod")
    ctx = _ctx(net, pod)
    convert_network(net, ctx)
    service, _ = convert_pod(pod, ctx)
    assert service.lookup_all("Unit", "Requires") == ["front-network.service"]
    pre = service.lookup_last_args("Service", "ExecStartPre") or []
    assert pre[pre.index("--network") + 1] == "systemd-front"
    assert service.lookup_last("Service", "Type") == "forking"


def test_pod_lists_the_containers_that_join_it() -> None:
    pod = UnitFile.parse("[Pod]\n", "app.pod")
    ctx = _ctx(pod)
    ctx.units["app.pod"].containers_to_start.append("web.service")
    service, _ = convert_pod(pod, ctx)
    assert service.lookup_all("Unit", "Wants")[-1] == "web.service"
    assert service.lookup_all("Unit", "Before") == ["web.service"]


@pytest.mark.parametrize(
    ("filename", "text", "message"),
    [
        ("a.volume", "[Volume]\nType=bind\n", "key Type can't be used without Device"),
        ("a.volume", "[Volume]\nDriver=image\n", "the key Image is mandatory when using the image driver"),
        ("a.network", "[Network]\nGateway=1.2.3.4\n", "cannot set gateway or range without subnet"),
        ("a.pod", "[Pod]\nVolume=x.volume:/x\n", "requested Quadlet source x.volume was not found"),
        ("a.pod", "[Pod]\nFoo=1\n", "unsupported key 'Foo' in group 'Pod' in /q/a.pod"),
    ],
)
def test_bad_files_raise_quadlet_errors(filename: str, text: str, message: str) -> None:
    unit = UnitFile.parse(text, filename, "/q/" + filename)
    convert = {".volume": convert_volume, ".network": convert_network, ".pod": convert_pod}[
        os.path.splitext(filename)[1]
    ]
    with pytest.raises(QuadletError) as e:
        convert(unit, _ctx(unit))
    assert e.value.what == message


def test_user_mode_waits_for_the_user_network_target() -> None:
    vol = UnitFile.parse("[Volume]\n", "a.volume")
    ctx = _ctx(vol)
    ctx.is_user = True
    service, _ = convert_volume(vol, ctx)
    assert service.lookup_all("Unit", "Wants") == ["podman-user-wait-network-online.service"]


def test_podman_binary_comes_from_the_context() -> None:
    vol = UnitFile.parse("[Volume]\n", "a.volume")
    ctx = _ctx(vol)
    ctx.podman = "/opt/podman"
    service, _ = convert_volume(vol, ctx)
    assert (service.lookup_last("Service", "ExecStart") or "").startswith("/opt/podman volume create")
