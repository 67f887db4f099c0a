"""Fusion's ``.container`` conversion against podman 5.4.2's real Quadlet generator.

Two corpora, each converted by the real generator (``scripts/real-quadlet``) and by ours:

* ``tests/conformance/corpus/``: Fusion's own inputs (every ``[Container]`` key, quoting, resets,
  references to ``.volume``/``.network``/``.pod``/``.image``/``.build`` units, drop-ins,
  templates, and one file per error podman reports). One run of each generator, root and
  ``--user``.
* podman's own test suite (``test/e2e/quadlet/*.container`` of podman 5.4, with their
  ``## assert-*`` lines), one run per case as podman's ``quadlet_test.go`` does. The inputs are kept
  in ``tests/conformance/podman-quadlet/``.

Outputs must be identical, except the order of the options podman writes in random order (Go map
iteration), which is compared after sorting (see ``canonical_exec_start``). For podman's cases, the
``## assert-*`` lines must give the same verdicts for our output as for the real one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformance"))

import quadlet_harness as H  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "conformance" / "corpus"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def real_quadlet() -> Path:
    return H.real_quadlet()


def _corpus_services() -> set[str]:
    return H.fusion_services(p.name for p in CORPUS.iterdir() if p.is_file())


@pytest.mark.parametrize("user", [False, True], ids=["system", "user"])
def test_own_corpus_matches_real_quadlet(real_quadlet: Path, user: bool) -> None:
    real = H.run_real([CORPUS], user=user)
    ours = H.run_ours_in_process([CORPUS], user=user)
    assert real.returncode == 1 and len(real.errors()) >= 20, "the corpus has one file per error"
    result = H.compare(ours, real, _corpus_services())
    assert result.equivalent, "\n".join(result.differences)
    assert set(ours.files) == {f for f in real.files if f in _corpus_services()}


def test_cli_is_the_same_generator(real_quadlet: Path) -> None:
    """``python -m units.quadlet`` (a new process, as a person runs it) gives the same output."""
    cli = H.run_ours([CORPUS])
    in_process = H.run_ours_in_process([CORPUS])
    assert (cli.returncode, cli.files, cli.symlinks, cli.errors()) == (
        in_process.returncode,
        in_process.files,
        in_process.symlinks,
        in_process.errors(),
    )


@pytest.fixture(scope="session")
def podman_tests() -> Path:
    return H.podman_tests_dir()


@pytest.mark.parametrize("user", [False, True], ids=["system", "user"])
def test_podman_suite_matches_real_quadlet(real_quadlet: Path, podman_tests: Path, user: bool) -> None:
    results = [H.run_case(case, podman_tests, user=user) for case in H.podman_cases()]
    identical = sum(r.comparison.identical for r in results)
    equivalent = sum(r.comparison.equivalent for r in results)
    same_verdicts = sum(r.real_asserts.failed == r.our_asserts.failed for r in results)
    all_pass = sum(not r.our_asserts.failed for r in results)
    real_pass = sum(not r.real_asserts.failed for r in results)
    table_ours = sum(r.ours_meets_table for r in results)
    table_real = sum(r.real_meets_table for r in results)
    print(
        f"\npodman 5.4 Quadlet .container cases ({'--user' if user else 'system'}), from {podman_tests}:\n"
        f"  {identical}/{len(results)} byte-identical to the real generator, "
        f"{equivalent}/{len(results)} identical up to podman's random option order\n"
        f"  ## assert-* lines: same verdicts as the real generator in {same_verdicts}/{len(results)} cases; "
        f"all pass on ours in {all_pass} cases (on the real generator in {real_pass})\n"
        f"  exit status and stderr text expected by quadlet_test.go: ours {table_ours}, real {table_real}"
    )
    problems = [
        f"{r.case.file}:\n" + "\n".join(r.comparison.differences)
        for r in results
        if not r.comparison.equivalent
    ]
    problems += [
        f"{r.case.file}: assertions differ: real failed {r.real_asserts.failed}, ours failed {r.our_asserts.failed}"
        for r in results
        if r.real_asserts.failed != r.our_asserts.failed
    ]
    problems += [
        f"{r.case.file}: meets the test table's exit status/stderr: real {r.real_meets_table}, ours {r.ours_meets_table}"
        for r in results
        if r.real_meets_table != r.ours_meets_table
    ]
    assert not problems, "\n\n".join(problems)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_containers_match_real_quadlet(real_quadlet: Path, tmp_path: Path, seed: int) -> None:
    """300 random ``.container`` files (tricky values for every key) in one directory."""
    from random import Random

    from units.quadlet.container_keys import SUPPORTED_KEYS

    rng = Random(seed)
    for name, text in H.RANDOM_SUPPORT_FILES.items():
        (tmp_path / name).write_text(text)
    for i in range(300):
        (tmp_path / f"r{i:03d}.container").write_text(H.random_container(rng, sorted(SUPPORTED_KEYS)))
    user = seed % 2 == 0
    real = H.run_real([tmp_path], user=user)
    assert "panic" not in real.stderr, real.stderr[-2000:]
    ours = H.run_ours_in_process([tmp_path], user=user)
    result = H.compare(ours, real, H.fusion_services(p.name for p in tmp_path.iterdir()))
    assert result.equivalent, "\n".join(result.differences[:10])


def test_generated_container_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    """Fusion's units for the corpus's well-formed containers pass the real ``systemd-analyze verify``.

    Left out: ``refs.container`` with its pod and the pod's other container (it holds odd inputs
    on purpose, e.g. ``Requires=data.volume`` that Quadlet 5.4 passes through), and the containers
    whose image comes from ``.image``/``.build`` units, which Fusion does not generate (their
    ``Requires=`` would name a missing unit).
    """
    from common.runner import run

    out = tmp_path / "out"
    res = run(
        [sys.executable, "-m", "units.quadlet", "--no-kmsg-log", str(out)],
        check=False,
        env={"QUADLET_UNIT_DIRS": str(CORPUS)},
        cwd=str(H.REPO_ROOT),
    )
    assert res.returncode == 1  # the corpus's err-*.container files
    for name in ("refs", "group-pod", "podded", "image-ref", "build-ref"):
        (out / f"{name}.service").unlink()
    units = sorted(str(p) for p in out.glob("*.service"))
    assert len(units) >= 12
    verify = run(["systemd-analyze", "verify", "--man=no", *units], check=False, timeout=120)
    assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")
