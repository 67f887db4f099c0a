"""Unit-rendering benchmark: 10,000 services → systemd units, microseconds per unit.

Each service is realistic: an image, a command, 8 environment variables (some with spaces, '%', '$'), two published ports,
a named volume, a bind mount and a tmpfs, a health check, a health-gated dependency, labels,
a restart policy and resource limits. The podman engine renders each one as a Quadlet
``.container`` file and runs it through Fusion's Quadlet converter (the full path the host agent
takes); the docker engine builds the ``.service`` directly.

Run: .venv/bin/python bench/units.py [--services 10000] [--engine podman|docker|both]
Target (issue 2): <= 1000 microseconds per unit. Both wall-clock and CPU time are printed: on a
busy machine (other processes on the same cores) the wall-clock figure grows, the CPU time much less.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from specs.app import DEFER_CHECKS, App  # noqa: E402
from units.render import HostOptions, render_app  # noqa: E402


def make_app(n: int) -> App:
    services: dict[str, object] = {
        "db": {
            "image": "localhost:5000/fusion/postgres:16",
            "healthcheck": {"test": ["CMD-SHELL", "pg_isready -U app"], "interval": 5, "retries": 5},
            "volumes": [{"type": "volume", "source": "data", "target": "/var/lib/postgresql/data"}],
        }
    }
    for i in range(n - 1):
        services[f"svc{i}"] = {
            "image": f"localhost:5000/fusion/app-{i % 50}:1.{i % 7}",
            "command": ["app-server", "--listen", "0.0.0.0:8000", "--name", f"svc {i}"],
            "environment": {
                "DATABASE_URL": f"postgres://app:secret@db:5432/app{i}",
                "LOG_LEVEL": "info",
                "WORKERS": str(1 + i % 8),
                "CACHE_URL": "redis://cache:6379/0",
                "FEATURE_FLAGS": "search,export,beta-ui",
                "GREETING": f"Hello from service {i}",  # spaces: quoted
                "DISCOUNT": "10%",  # a '%': escaped as %%
                "PRICE_FORMAT": "$%.2f",  # '$' and '%'
            },
            "ports": [{"target": 8000, "published": 20000 + i % 40000}, {"target": 9100, "protocol": "udp"}],
            "volumes": [
                {"type": "volume", "source": "data", "target": "/data"},
                {"type": "bind", "source": f"/srv/svc{i}", "target": "/config", "read_only": True},
                {"type": "tmpfs", "target": "/tmp", "tmpfs_size": 1 << 26},
            ],
            "healthcheck": {"test": ["CMD", "wget", "-q", "-O-", "http://127.0.0.1:8000/healthz"], "interval": 10},
            "depends_on": {"db": {"condition": "service_healthy"}},
            "labels": {"team": "payments", "tier": "backend"},
            "restart": "on-failure",
            "restart_max_retries": 5,
            "stop_grace_period": 20,
            "user": "1000:1000",
            "read_only": True,
            "cap_drop": ["ALL"],
            "deploy": {"resources": {"limits": {"cpus": 0.5, "memory": 1 << 28, "pids": 200}}},
        }
    # Built without the whole-app checks (two services here share host ports on purpose: this
    # measures rendering, not the semantic checks).
    return App.model_validate(
        {"name": "bench", "services": services, "volumes": {"data": {}}}, context={DEFER_CHECKS: True}
    )


def bench(app: App, engine: str) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of this process, container units rendered)."""
    host = HostOptions(podman_args=("--cgroups=disabled",), environment={"DISCOVERY": "10.0.0.1"})
    start, cpu = time.perf_counter(), time.process_time()
    result = render_app(app, engine=engine, host=host)  # type: ignore[arg-type]
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    units = sum(1 for name in result.files if name.startswith("bench-svc") or name.startswith("bench-db"))
    return elapsed, cpu, units


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--engine", choices=["podman", "docker", "both"], default="both")
    args = parser.parse_args()
    app = make_app(args.services)
    engines = ["podman", "docker"] if args.engine == "both" else [args.engine]
    for engine in engines:
        elapsed, cpu, units = bench(app, engine)
        print(
            f"{engine}: {units} units in {elapsed:.2f} s: {elapsed / units * 1e6:.0f} us per unit "
            f"(CPU time {cpu / units * 1e6:.0f} us; target <= 1000)"
        )


if __name__ == "__main__":
    main()
