"""The main job end-to-end on the embedded default (``validibot demo``).

SQLite Dagster instance under ``$DAGSTER_HOME`` (default ``.validibot/dagster_home``), local-folder landing zone
and object store under ``.validibot/``, local-subprocess backend. Builds the sample FMUs from the C sources in
``validibot_pipelines/samples``, drops them (with their specs) into the landing zone, lets the upload sensor
register and run them through Dagster, and prints a summary per model.
"""

from __future__ import annotations

import os
import shutil
from importlib import resources
from pathlib import Path

from validibot_pipelines.local_runner import RunOutcome
from validibot_pipelines.settings import validibot_home

INSTANCE_YAML = """\
# written by `validibot demo`: the embedded default (SQLite storage under this folder)
telemetry:
  enabled: false
"""


def prepare_home() -> Path:
    home = validibot_home()
    os.environ.setdefault("VALIDIBOT_HOME", str(home))
    dagster_home = Path(os.environ.setdefault("DAGSTER_HOME", str(home / "dagster_home")))
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML)
    return home


def drop_samples(landing: Path, copies: int = 1) -> list[Path]:
    """Build the good sample FMUs and copy the sample IDF into the landing zone, each with its sidecar spec."""
    from validibot_pipelines.samples.build import GOOD_SAMPLES, build_fmu
    from validibot_pipelines.samples.energyplus import sample_idf
    from validibot_pipelines.samples.mesh import make_part

    specs = resources.files("validibot_pipelines.samples") / "specs"
    landing.mkdir(parents=True, exist_ok=True)
    dropped = []
    with resources.as_file(specs) as spec_dir:
        for name in GOOD_SAMPLES:
            for i in range(copies):
                fmu = build_fmu(name, landing, variant=f"copy{i}" if copies > 1 else None)
                shutil.copyfile(spec_dir / f"{name}.validation.yaml", fmu.with_name(fmu.name + ".validation.yaml"))
                dropped.append(fmu)
        idf = landing / "one_zone_box.idf"
        if not idf.exists():  # rewriting identical bytes would only re-announce an already validated model
            shutil.copyfile(sample_idf("one_zone_box"), idf)
            shutil.copyfile(spec_dir / "one_zone_box.validation.yaml", landing / "one_zone_box.idf.validation.yaml")
        dropped.append(idf)
        step = landing / "cylinder_with_hole.step"
        if not step.exists():  # STEP files carry a timestamp: regenerating would make new bytes every time
            make_part("cylinder_with_hole", landing)
            shutil.copyfile(spec_dir / "cylinder_with_hole.validation.yaml", landing / f"{step.name}.validation.yaml")
        dropped.append(step)
    return dropped


def summarize(outcome: RunOutcome) -> str:
    intake = (outcome.outputs.get("fmu_intake") or outcome.outputs.get("energyplus_model")
              or outcome.outputs.get("cad_file") or {})
    probe = outcome.outputs.get("fmu_probe") or {}
    sim = (outcome.outputs.get("fmu_simulation") or outcome.outputs.get("energyplus_simulation")
           or outcome.outputs.get("volume_mesh") or {})
    status = sim.get("status") or probe.get("status") or intake.get("status") or "not run"
    lines = [f"{intake.get('file_name', outcome.source_uri)}  [{status}]  (Dagster run {outcome.run_id[:8]})",
             f"  sha256   {outcome.partition_key}"]
    counts = (probe.get("outputs") or {}).get("counts")
    if counts:
        lines.append("  probe    " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    metrics = (sim.get("outputs") or {}).get("metrics")
    if metrics:
        shown = ("site_eui_kwh_m2", "site_electricity_kwh", "heating_kwh", "cooling_kwh", "peak_electric_demand_w")
        lines.append("  metrics  " + ", ".join(f"{k}={metrics[k]:.6g}" for k in shown if metrics.get(k) is not None))
    mesh = sim.get("outputs") or {}
    if "sicn_min" in mesh:
        lines.append(f"  mesh     {mesh['total_elements']} elements, strategy {mesh['strategy']}, "
                     f"sicn_min={mesh['sicn_min']:.3f}, gamma_avg={mesh['gamma_avg']:.3f}")
    values = (sim.get("outputs") or {}).get("output_values")
    if values:
        lines.append("  outputs  " + ", ".join(
            f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()))
    for result in sim.get("assertions", []):
        lines.append(f"  {'PASS' if result['passed'] else 'FAIL'}     {result['name']} "
                     f"({result['severity']}): {result['expr']}" + (f" — {result['error']}" if result["error"] else ""))
    for name, (passed, description) in sorted(outcome.checks.items()):
        if not passed:
            lines.append(f"  check {name} failed: {description}")
    return "\n".join(lines)


def run_demo(copies: int = 1) -> int:
    home = prepare_home()
    import warnings

    from dagster import DagsterInstance, PreviewWarning

    warnings.filterwarnings("ignore", category=PreviewWarning)

    from validibot_pipelines.definitions import build_defs
    from validibot_pipelines.local_runner import tick

    landing = home / "landing"
    dropped = drop_samples(landing, copies)
    print(f"dropped {len(dropped)} sample model(s) into {landing}")
    instance = DagsterInstance.get()
    defs = build_defs()
    outcomes: list[RunOutcome] = []
    while True:  # one tick handles a bounded batch; keep ticking until the landing zone is drained
        batch = tick(defs, instance, log_level="WARNING")
        outcomes.extend(batch)
        if not batch:
            break
    print(f"validated {len(outcomes)} model(s); Dagster instance at {os.environ['DAGSTER_HOME']}\n")
    for outcome in outcomes:
        print(summarize(outcome) + "\n")
    if not outcomes:
        print("nothing new in the landing zone (identical uploads are not validated twice)")
    ok = all(o.success and all(p for p, _ in o.checks.values()) for o in outcomes)
    print("all validations passed" if ok else "some validations failed")
    return 0 if ok else 1
