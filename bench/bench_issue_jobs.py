# SPDX-License-Identifier: Apache-2.0
"""Per-job cost of ``issue`` jobs through the in-process runner, shared vs per-job state.

Starts a throwaway docker-registry (tests/harness), pushes small one-layer
images, and runs ``issue`` jobs one at a time (submit, then wait) through
:class:`attestor.jobs.runner.InlineRunner` on a SQLite data dir. Per round,
interleaved, the same run measures:

* ``echo``: the job plumbing alone (row, running, result): the floor;
* ``per-job``: ``tasks=TASKS``, whose issue task builds the registry client,
  reads the policies and loads the signing key for every job (what every
  issue job did before the worker state held them);
* ``runner``: the runner's default tasks (on this tree: one state per process);
* ``fresh`` images (every layer signed and stored) and ``repeat`` of an
  image already attested (resolve, look up, answer: overhead-dominated).

Then the build alone (``adapters_from_settings``), key and keyless mode (the
embedded production trust config, a locally minted token; nothing is signed).

    .venv/bin/python bench/bench_issue_jobs.py [--jobs 20] [--rounds 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jwt  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from attestor.config import Settings, load_settings  # noqa: E402
from attestor.jobqueue import submit, utc_now  # noqa: E402
from attestor.jobs.runner import InlineRunner  # noqa: E402
from attestor.jobs.tasks import TASKS  # noqa: E402
from attestor.services.context import adapters_from_settings  # noqa: E402
from attestor.store import jobs as job_store  # noqa: E402
from attestor.store.bootstrap import prepare  # noqa: E402
from attestor.store.db import make_engine, make_session_factory  # noqa: E402
from bench._host import print_host  # noqa: E402
from tests.harness.services import Registry  # noqa: E402
from tests.integration.issuance._images import client_for, push  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _settings(work: Path, registry: str, extra: Mapping[str, str] | None = None) -> Settings:
    policies = work / "policies"
    policies.mkdir(exist_ok=True)
    shutil.copy(ROOT / "policies" / "dev.yaml", policies / "dev.yaml")
    return load_settings(
        {
            "ATTESTOR_DATA_DIR": str(work / "var"),
            "ATTESTOR_INSECURE_REGISTRIES": registry,
            "ATTESTOR_POLICY_DIR": str(policies),
            "ATTESTOR_LOG_LEVEL": "WARNING",
            **(extra or {}),
        }
    )


def _ms_per_job(
    runner: InlineRunner, factory: sessionmaker[Session], kind: str, payloads: list[dict[str, Any]]
) -> tuple[float, float]:
    """(wall ms, this process's CPU ms) per job, jobs one at a time."""
    start, cpu = time.perf_counter(), time.process_time()
    for payload in payloads:
        job = submit(factory, runner, kind=kind, payload=payload, now=utc_now())
        runner.wait(timeout=120)
        with factory() as session:
            row = job_store.get_job(session, job.id)
        if row.status != "finished":
            raise SystemExit(f"{kind} job {job.id}: {row.status} {row.error}")
    n = len(payloads)
    return (time.perf_counter() - start) * 1000 / n, (time.process_time() - cpu) * 1000 / n


def _build_ms(settings: Settings, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        adapters_from_settings(settings)
    return (time.perf_counter() - start) * 1000 / n


def _keyless_settings(work: Path, registry: str) -> Settings:
    now = datetime.now(UTC)
    token = jwt.encode(
        {
            "iss": "https://oidc.bench.test",
            "sub": "https://bench.test/worker",
            "aud": "sigstore",
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(hours=1)).timestamp()),
            "email_verified": True,
        },
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
    )
    token_file = work / "token"
    token_file.write_text(token)
    return _settings(
        work,
        registry,
        {
            "ATTESTOR_SIGNING_MODE": "keyless",
            "ATTESTOR_KEYLESS_INSTANCE": "production",
            "ATTESTOR_KEYLESS_TOKEN_FILE": str(token_file),
        },
    )


def _spread(values: list[float]) -> str:
    return (
        f"min {min(values):7.2f}  median {statistics.median(values):7.2f}  max {max(values):7.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20, help="jobs per mode per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print_host()
    # tmpfs when there is one: SQLite's fsyncs on a shared disk are noise here.
    shm = Path("/dev/shm")
    work = Path(tempfile.mkdtemp(prefix="bench-issue-jobs-", dir=shm if shm.is_dir() else None))
    (work / "registry").mkdir()
    registry = Registry(work / "registry").start()
    try:
        settings = _settings(work, registry.host)
        engine = make_engine(settings.database_url)
        prepare(settings, engine, now=utc_now())
        factory = make_session_factory(engine)
        pusher = client_for(registry.host, work / "push-cache")

        def fresh(n: int) -> list[dict[str, Any]]:
            return [
                {
                    "image": push(
                        pusher, f"{registry.host}/b/{uuid.uuid4().hex[:10]}", "v1", layers=1
                    ).by_digest
                }
                for _ in range(n)
            ]

        repeat = fresh(1) * args.jobs
        runners: dict[str, Callable[[], InlineRunner]] = {
            "per-job": lambda: InlineRunner(settings, factory, tasks=TASKS, max_workers=1),
            "runner": lambda: InlineRunner(settings, factory, max_workers=1),
        }
        results: dict[str, list[tuple[float, float]]] = {}
        for make in runners.values():
            warm = make()
            _ms_per_job(warm, factory, "issue", repeat[:1] + fresh(2))
            warm.shutdown()
        for _ in range(args.rounds):
            floor = InlineRunner(settings, factory, max_workers=1)
            results.setdefault("echo (floor)", []).append(
                _ms_per_job(floor, factory, "echo", [{"n": i} for i in range(args.jobs)])
            )
            floor.shutdown()
            for name, make in runners.items():
                runner = make()
                results.setdefault(f"{name} fresh", []).append(
                    _ms_per_job(runner, factory, "issue", fresh(args.jobs))
                )
                results.setdefault(f"{name} repeat", []).append(
                    _ms_per_job(runner, factory, "issue", repeat)
                )
                runner.shutdown()
        builds: dict[str, list[float]] = {"key": [], "keyless": []}
        keyless = _keyless_settings(work, registry.host)
        for _ in range(args.rounds):
            builds["key"].append(_build_ms(settings, 20))
            builds["keyless"].append(_build_ms(keyless, 20))
        print(f"{args.jobs} jobs per mode per round, {args.rounds} rounds, ms per job:")
        for name, pairs in results.items():
            print(f"  {name:15s} wall {_spread([w for w, _ in pairs])}")
            print(f"  {'':15s} cpu  {_spread([c for _, c in pairs])}")
        print("one build of registry client + policies + signer (adapters_from_settings), ms:")
        for name, values in builds.items():
            print(f"  {name:18s} {_spread(values)}")
        engine.dispose()
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
