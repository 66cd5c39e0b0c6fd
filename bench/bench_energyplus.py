"""Benchmark: the EnergyPlus validation pipeline vs the bare ``energyplus`` CLI on the same model, one run.

    .venv/bin/python bench/bench_energyplus.py [REPEATS]

Raw: the EnergyPlus binary on the normalised model (the same private copy the worker writes) with the same
weather, REPEATS times. Pipeline: the model dropped into a landing zone, upload sensor tick, one Dagster run
(intake → worker → EnergyPlus → metrics → CEL checks), REPEATS byte-distinct copies. Prints the ratio, and
Dagster's own floor: a run of two no-op partitioned assets on a test instance (``execute_in_process``), and the
lowest ratio one Dagster run per model could reach with nothing of ours in it (bare CLI + that floor).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

SPEC = ("weather: Chicago\nassertions:\n"
        "  - {name: eui_plausible, expr: 'o.site_eui_kwh_m2 > 10.0 && o.site_eui_kwh_m2 < 1000.0'}\n")


def dagster_floor(runs: int = 5) -> float:
    """Median seconds of a Dagster run of two no-op partitioned assets (one partition), in process."""
    import statistics

    from dagster import Definitions, DynamicPartitionsDefinition, asset, define_asset_job, instance_for_test

    models = DynamicPartitionsDefinition(name="models")

    @asset(partitions_def=models)
    def first() -> int:
        return 1

    @asset(partitions_def=models)
    def second(first: int) -> int:
        return first

    job = Definitions(assets=[first, second], jobs=[define_asset_job("floor", partitions_def=models)]
                      ).resolve_job_def("floor")
    times = []
    with tempfile.TemporaryDirectory() as tmp, instance_for_test(temp_dir=tmp) as instance:
        for i in range(runs + 1):  # the first run warms up
            instance.add_dynamic_partitions("models", [f"m{i}"])
            start = time.perf_counter()
            assert job.execute_in_process(instance=instance, partition_key=f"m{i}").success
            times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main(repeats: int = 3) -> None:
    from bytecode import compile_package

    compile_package()  # as a wheel install would (bench/bytecode.py)
    warnings.filterwarnings("ignore")
    from bench_backfill import landing_run_seconds  # same folder (on sys.path when run as a script)

    from validibot_pipelines.validators.energyplus.idf import normalise_idf
    from validibot_pipelines.validators.energyplus.samples import sample_idf
    from validibot_pipelines.validators.energyplus.worker import install

    source = sample_idf("one_zone_box").read_text()
    weather = install.find_shipped_weather("Chicago")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = root / "raw" / "in.idf"
        model.parent.mkdir()
        model.write_text(normalise_idf(source, timestep_per_hour=4))
        start = time.perf_counter()
        for i in range(repeats):
            proc = subprocess.run([str(install.binary()), "-w", str(weather), "-d", str(root / "raw" / f"out{i}"),
                                   "-x", str(model)], capture_output=True, text=True)
            assert proc.returncode == 0, proc.stdout[-2000:]
        raw = time.perf_counter() - start

        landing = root / "landing"
        landing.mkdir()
        for i in range(repeats):
            (landing / f"box{i}.idf").write_text(source + f"\n! copy {i}\n")
            (landing / f"box{i}.idf.validation.yaml").write_text(SPEC)
        pipeline = landing_run_seconds(root, landing, repeats)

    print(f"annual runs:                 {repeats} (one_zone_box.idf, Chicago TMY3, 4 timesteps/h)")
    print(f"bare energyplus CLI:         {raw:8.3f} s  ({raw / repeats:6.3f} s per run)")
    print(f"pipeline (Dagster runs):     {pipeline:8.3f} s  ({pipeline / repeats:6.3f} s per run)")
    print(f"overhead per validation:     {(pipeline - raw) / repeats:8.3f} s")
    print(f"ratio pipeline / bare CLI:   {pipeline / raw:8.2f}x")
    floor = dagster_floor()
    print(f"bare Dagster run, 2 no-op assets: {floor:6.3f} s; one run per model can reach at best "
          f"{(raw / repeats + floor) / (raw / repeats):.2f}x")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
