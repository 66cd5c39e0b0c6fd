"""The Modal EnergyPlus function body, run for real with ``.local()`` (the Modal cloud is unreachable here).

The control plane writes the input envelope to an s3:// bundle on moto exactly as it would for Modal; the
function body runs the real EnergyPlus through the shared worker entrypoint and writes the output envelope
and artifacts back to s3://.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from validibot_pipelines.orchestration.models import intake
from validibot_pipelines.resources.backends.base import LaunchRecord
from validibot_pipelines.storage import get_store
from validibot_pipelines.validators.energyplus import launch as energyplus
from validibot_pipelines.validators.energyplus.samples import sample_idf

SPEC = "weather: USA_CA_San.Francisco.Intl.AP.724940_TMY3.epw\ntimestep_per_hour: 2\n"


class _ModalLocal:
    """Calls the Modal function body in-process, the way Modal would call it in its container."""

    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []

    def launch(self, input_uri: str, *, run_id: str, timeout_seconds: float, context: Any = None) -> LaunchRecord:
        from validibot_pipelines.validators.energyplus.modal_app import run_energyplus_simulation

        self.results.append(run_energyplus_simulation.local(input_uri))
        return LaunchRecord(backend="modal-local", launch_id=run_id, returncode=0, timed_out=False, seconds=0.0)


def test_run_energyplus_simulation_local_reads_and_writes_s3(s3_bucket: str, tmp_path: Path) -> None:
    landing = f"{s3_bucket}/landing"
    store = f"{s3_bucket}/store"
    model_uri = f"{landing}/box.idf"
    spec_uri = f"{model_uri}.validation.yaml"
    get_store(model_uri).upload_file(sample_idf("one_zone_box"), model_uri)
    get_store(spec_uri).write_bytes(spec_uri, SPEC.encode(), "application/yaml")

    record = intake(model_uri, store_uri=store, spec_uri=spec_uri)
    assert record.accepted, record.findings
    backend = _ModalLocal()
    out, _ = energyplus.simulate(record, store_uri=store, backend=backend, attempt="modal-test")

    assert out.status.value == "success", out.messages
    assert backend.results and backend.results[0]["status"] == "success"  # the function's return value
    sim = out.outputs
    assert sim["weather_file"].startswith("USA_CA_San.Francisco")
    assert sim["metrics"]["site_electricity_kwh"] > 1000
    assert sim["sql_uri"].startswith(f"{store}/") and get_store(sim["sql_uri"]).exists(sim["sql_uri"])
