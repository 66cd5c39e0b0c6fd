"""Benchmark: the same N FMU validations on each backend runnable here, relative to the local backend.

    .venv/bin/python bench/bench_backends.py [N]

Starts gcp-storage-emulator, then for each backend (local subprocess, Modal through its local stand-in,
Cloud Run Jobs through its local job runner + the GCS output sensor) drops N first_order_lag variants into
a gs:// landing zone and runs the real sensors and Dagster runs (SQLite instance) until every validation has
its simulation result. Prints wall time per validation and the ratio to local: the cost of each backend's
control path (volume upload + child call; envelope + launch record + sensor round trips). Stand-ins run on
this machine, so cloud cold starts and network are NOT included; Cloud Run launches return at once, so its N
executions overlap. The sensor groups the N new uploads into one run (``VALIDIBOT_SENSOR_BATCH_SIZE``), so each
worker step is one batch launch: one local worker process, N Modal calls spawned together, one Cloud Run
execution of N tasks. Not run in CI.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SPEC = b"simulation: {stop_time: 3, step_size: 0.01}\ninputs: {u: 3.0}\nassertions:\n" \
       b"  - {name: settles, expr: 'o.y > 5.98 && o.y < 6.0'}\n"


def _run(name: str, backend: object, n: int, root: str, tmp: Path) -> float:
    from dagster import instance_for_test

    from tests.backend_helpers import drain, pipeline_on
    from validibot_pipelines.local_runner import tick
    from validibot_pipelines.validators.fmi.samples.build import build_fmu

    fmus = [build_fmu("first_order_lag", tmp / name, variant=f"{name}{i}") for i in range(n)]
    (tmp / f"home-{name}").mkdir()
    with instance_for_test(temp_dir=str(tmp / f"home-{name}")) as instance:
        p = pipeline_on(instance, root, backend)
        for fmu in fmus:
            p.drop(fmu, spec=SPEC.decode())
        start = time.perf_counter()
        outcomes = tick(p.defs, p.instance, log_level="ERROR")
        outcomes += drain(p, max_ticks=4 * n + 4, log_level="ERROR")
        seconds = time.perf_counter() - start
        sims = [o.outputs["fmu_simulation"] for o in outcomes if "fmu_simulation" in o.outputs]
        assert len(sims) == n and all(s["status"] == "success" for s in sims), f"{name}: {len(sims)}/{n}"
    return seconds


def main(n: int = 3) -> None:
    warnings.filterwarnings("ignore")
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from tests.backend_helpers import cloudrun_stand_in, modal_stand_in
    from tests.emulators import gcs_emulator
    from validibot_pipelines.storage.registry import _store_for

    with gcs_emulator() as endpoint, tempfile.TemporaryDirectory() as tmp_name:
        os.environ["STORAGE_EMULATOR_HOST"] = endpoint
        os.environ["GOOGLE_CLOUD_PROJECT"] = "validibot-test"
        _store_for.cache_clear()
        storage.Client(project="validibot-test", credentials=AnonymousCredentials()).create_bucket("bench")
        tmp = Path(tmp_name)
        times = {
            "local": _run("local", None, n, "gs://bench/local", tmp),
            "modal (stand-in)": _run("modal", modal_stand_in(tmp / "volumes"), n, "gs://bench/modal", tmp),
            "cloudrun (stand-in)": _run("cloudrun", cloudrun_stand_in(), n, "gs://bench/cloudrun", tmp),
        }
    print(f"FMU validations per backend: {n} (first_order_lag variants, probe + 300-step simulation, gs:// store)")
    for name, seconds in times.items():
        print(f"{name:22s} {seconds:8.2f} s  ({seconds / n:6.2f} s per validation, {n / seconds * 3600:6.0f} "
              f"models/hour)  ratio vs local {seconds / times['local']:5.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
