"""Benchmark: models per hour for each validator on the local backend, as one batch (`validibot validate`).

    .venv/bin/python bench/bench_throughput.py [N]

For each registered validator, N byte-distinct copies of its demo sample (FMU variants built from source; the
IDF, the XML document with a comment appended; the STEP part generated again) are validated by ONE
``validibot validate <folder> --json`` call in a fresh process and a fresh store — intake, the sandboxed
worker steps (one worker launch per step for the batch, warm sandboxed children), assertions. Prints wall
time, seconds per model and models per hour on this machine. Every model must pass. The per-backend numbers
(Modal and Cloud Run stand-ins, Docker) are in bench_backends.py and bench_docker.py. Not run in CI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _copies(validator: str, folder: Path, n: int) -> None:
    """``n`` distinct models of ``validator`` (with their specs and side files) in ``folder``."""
    from validibot_pipelines.validators.registry import get

    samples = folder / "_sample"
    samples.mkdir(parents=True)
    if validator == "fmi":
        from validibot_pipelines.validators.fmi.samples.build import SAMPLES_DIR, build_fmu

        for i in range(n):
            fmu = build_fmu("first_order_lag", folder, variant=f"tp{i}")
            spec = SAMPLES_DIR / "first_order_lag.validation.yaml"
            shutil.copyfile(spec, fmu.with_name(fmu.name + ".validation.yaml"))
        return
    if validator == "mesh":
        from validibot_pipelines.validators.mesh.samples import make_part
        from validibot_pipelines.validators.mesh.validator import SAMPLES_DIR

        for i in range(n):
            part = make_part("cylinder_with_hole", samples)
            target = folder / f"part{i}.step"
            part.rename(target)
            target.with_name(target.name + ".validation.yaml").write_bytes(
                (SAMPLES_DIR / "cylinder_with_hole.validation.yaml").read_bytes())
            time.sleep(1.01)  # STEP headers carry a timestamp in seconds: a new second, new bytes
        return
    (model,) = get(validator).demo_samples(samples, 1)
    comment = {"energyplus": "\n! copy {i}\n", "xml": "\n<!-- copy {i} -->\n"}[validator]
    for entry in samples.iterdir():
        if entry != model and not entry.name.startswith(model.name):
            shutil.copyfile(entry, folder / entry.name)  # side files (the XSD)
    spec = model.with_name(model.name + ".validation.yaml")
    for i in range(n):
        target = folder / f"{model.stem}_{i}{model.suffix}"
        target.write_bytes(model.read_bytes() + comment.format(i=i).encode())
        shutil.copyfile(spec, target.with_name(target.name + ".validation.yaml"))


def main(n: int = 10) -> None:
    from validibot_pipelines.validators import REGISTERED

    rows = []
    with tempfile.TemporaryDirectory(prefix="validibot-throughput-") as tmp:
        for validator in REGISTERED:
            folder = Path(tmp) / validator
            _copies(validator, folder, n)
            shutil.rmtree(folder / "_sample")
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "validibot_pipelines.cli", "validate", str(folder), "--json"],
                                  env={**os.environ, "VALIDIBOT_HOME": str(Path(tmp) / f"home-{validator}")},
                                  capture_output=True, text=True)
            seconds = time.perf_counter() - start
            passed = proc.stdout.count('"status":"success"')
            if passed != n:
                raise SystemExit(f"{validator}: only {passed}/{n} passed: {proc.stderr[-2000:]}{proc.stdout[-2000:]}")
            rows.append((validator, seconds))
    print(f"models per validator: {n}, one `validibot validate` batch each, local backend, "
          f"{len(os.sched_getaffinity(0))} CPUs")
    for validator, seconds in rows:
        print(f"{validator:11s} {seconds:8.2f} s  {seconds / n:7.3f} s per model  "
              f"{n / seconds * 3600:9.0f} models/hour")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
