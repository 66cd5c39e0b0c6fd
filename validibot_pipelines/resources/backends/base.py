"""What every backend is and reports: one ``launch`` method, one :class:`LaunchRecord` (shown in the UI).

Backends are Dagster ``ConfigurableResource`` classes (local subprocess, Docker, Modal, Cloud Run Jobs) that
share no base class on purpose — each wraps a different client. Assets depend on the :class:`ComputeBackend`
protocol instead (``ResourceParam[ComputeBackend]``), so any of them can be bound to ``fmi_backend`` etc.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from validibot_pipelines.runtime.batch import run_id_of


class LaunchRecord(BaseModel):
    backend: str
    launch_id: str  # pid, container id, Modal call id or Cloud Run execution name
    returncode: int | None
    timed_out: bool
    seconds: float
    log_tail: str = ""
    image: str = ""  # worker image / Modal app+function / Cloud Run job (what code ran)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # Asynchronous backends (Cloud Run Jobs) return right after the launch: the output envelope arrives later
    # and is collected by the GCS output sensor. ``status`` is then the job status at launch time.
    pending: bool = False
    status: str = ""  # PENDING / RUNNING / SUCCEEDED / FAILED / CANCELLED (Cloud Run), or "" when not tracked
    error: str = ""  # why the launch itself failed (auth, not deployed, timeout …) with what to do
    details: dict[str, Any] = Field(default_factory=dict)  # backend-specific extras (region, volume, …)


def batch_records(record: LaunchRecord, input_uris: list[str], manifest_uri: str) -> list[LaunchRecord]:
    """The one launch of a batch, as each of its envelopes' launch record: the batch named in ``details``, and
    of the worker's log only the lines about this envelope (the batch worker prefixes them with its run id)."""
    records = []
    for i, uri in enumerate(input_uris):
        run_id = run_id_of(uri)
        own = "\n".join(line for line in record.log_tail.splitlines() if run_id in line)
        records.append(record.model_copy(update={
            "log_tail": own or record.log_tail[-2000:],
            "details": {**record.details, "batch": manifest_uri, "batch_size": len(input_uris), "batch_index": i}}))
    return records


@runtime_checkable
class ComputeBackend(Protocol):
    """The one contract: run the worker entrypoint on ``input_uri`` (an input envelope) and report how it went.

    The worker writes the output envelope to the envelope's ``expected_output_uri``; the backend never reads
    or interprets it (``orchestration.launch.read_output`` does, for every backend alike).
    """

    def launch(self, input_uri: str, *, run_id: str, timeout_seconds: float, context: Any = None) -> LaunchRecord:
        ...

    def launch_batch(self, input_uris: list[str], *, batch_id: str, timeout_seconds: float,
                     context: Any = None) -> list[LaunchRecord]:
        """One worker launch for several envelopes, the same contract for each (``runtime/batch.py``): a record
        per envelope, in order; ``timeout_seconds`` is each envelope's own timeout."""
        ...
