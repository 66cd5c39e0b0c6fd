"""Modal app for the meshing validator: ``modal deploy -m validibot_pipelines.validators.mesh.modal_app``.

``generate_preview_mesh(bucket, key)`` and ``generate_mesh(bucket, key, quality_params)`` read the part from
S3 (the project's S3 store, boto3) and write their results next to it under ``<key>.mesh/``
(``<name>.preview.json``; ``<name>.msh``,
``<name>_result.json``, ``<name>.quality.json``). They call the same runtime code as every other backend
(:func:`~validibot_pipelines.validators.mesh.worker.preview.preview_part`,
:func:`~validibot_pipelines.validators.mesh.worker.volume.mesh_part`), so a part meshes identically on Modal,
Docker, Cloud Run or a laptop.
GPU: ``VALIDIBOT_MESH_GPU`` at deploy time (default ``T4``, as in the seed; ``none`` for CPU-only — Gmsh itself
meshes on CPUs, so ``none`` is the cheaper choice unless the image later gains GPU post-processing). Timeout
600 s per call. The Modal cloud is unreachable from the test machine: the bodies are tested with ``.local()``
against a moto S3 server (``tests/test_modal_mesh.py``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import modal

from validibot_pipelines.runtime.modal_app import run_envelope, worker_image

APP_NAME = "validibot-mesh"
TIMEOUT_SECONDS = 600
_gpu = os.environ.get("VALIDIBOT_MESH_GPU", "T4").strip()
GPU = None if _gpu.lower() in {"", "none", "cpu"} else _gpu

app = modal.App(APP_NAME)
image = worker_image("mesh")


def _upload(bucket: str, key: str, path: Path, content_type: str) -> str:
    """Store a result next to the part, under ``<key>.mesh/``, with the project's S3 store (its retries)."""
    from validibot_pipelines.storage import get_store

    uri = f"s3://{bucket}/{key}.mesh/{path.name}"
    get_store(uri).upload_file(path, uri, content_type)
    return uri


def _download(bucket: str, key: str, workdir: Path) -> Path:
    """Fetch the part with the project's S3 store (honours AWS_ENDPOINT_URL: moto in tests; IAM on Modal)."""
    from validibot_pipelines.storage import get_store

    uri = f"s3://{bucket}/{key}"
    name = PurePosixPath(key).name
    if not name.lower().endswith((".step", ".stp", ".stl")):
        raise ValueError(f"{uri}: not a .step, .stp or .stl part")
    local = workdir / name
    try:
        get_store(uri).download_file(uri, local)
    except FileNotFoundError as exc:
        raise ValueError(f"{uri} does not exist; upload the part there first or check the bucket and key") from exc
    return local


def _failure(exc: Exception) -> dict[str, Any]:
    from validibot_pipelines.validators.mesh.worker.calls import MeshFailure

    if isinstance(exc, MeshFailure):
        status = "failed_runtime" if exc.system_fault else "failed_validation"
        return {"status": status, "code": exc.code, "message": exc.text}
    return {"status": "failed_validation", "code": "MESH_BAD_REQUEST", "message": str(exc)}


@app.function(image=image, gpu=GPU, timeout=TIMEOUT_SECONDS, cpu=2.0, memory=4096)
def generate_preview_mesh(bucket: str, key: str) -> dict[str, Any]:
    """Surface preview of ``s3://bucket/key`` → ``{vertices, triangles, bbox}`` JSON in S3; returns its facts."""
    from validibot_pipelines.validators.mesh.envelopes import MeshPreviewInputs
    from validibot_pipelines.validators.mesh.worker.calls import MeshFailure
    from validibot_pipelines.validators.mesh.worker.preview import preview_part

    with tempfile.TemporaryDirectory(prefix="validibot-mesh-") as tmp:
        workdir = Path(tmp)
        try:
            part = _download(bucket, key, workdir)
            result = preview_part(part, part.name, workdir / "preview", MeshPreviewInputs())
        except (MeshFailure, ValueError) as exc:
            return _failure(exc)
        if result.preview_json is not None:
            result.outputs.preview_uri = _upload(bucket, key, result.preview_json, "application/json")
        return {"status": "success", "warnings": [text for _code, text in result.warnings],
                **result.outputs.model_dump(mode="json")}


@app.function(image=image, gpu=GPU, timeout=TIMEOUT_SECONDS, cpu=2.0, memory=4096)
def generate_mesh(bucket: str, key: str, quality_params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Quality-scored volume mesh of ``s3://bucket/key``; ``quality_params`` holds the targets (``sicn_min``,
    ``sicn_avg``, ``gamma_min``, ``gamma_avg``) and optionally ``meshing`` (the spec's meshing options)."""
    from pydantic import ValidationError

    from validibot_pipelines.validators.mesh.envelopes import MeshInputs
    from validibot_pipelines.validators.mesh.worker.calls import MeshFailure
    from validibot_pipelines.validators.mesh.worker.volume import mesh_part

    params = dict(quality_params or {})
    meshing = params.pop("meshing", None)
    try:
        inputs = MeshInputs(targets=params, **({"meshing": meshing} if meshing is not None else {}))
    except ValidationError as exc:
        return {"status": "failed_validation", "code": "MESH_BAD_REQUEST",
                "message": f"quality_params: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"}
    with tempfile.TemporaryDirectory(prefix="validibot-mesh-") as tmp:
        workdir = Path(tmp)
        try:
            part = _download(bucket, key, workdir)
            result = mesh_part(part, part.name, workdir / "mesh", inputs, timeout_seconds=TIMEOUT_SECONDS)
        except (MeshFailure, ValueError) as exc:
            return _failure(exc)
        out = result.outputs
        out.msh_uri = _upload(bucket, key, result.msh, "model/x-gmsh-msh")
        out.result_uri = _upload(bucket, key, result.result_json, "application/json")
        out.quality_uri = _upload(bucket, key, result.quality_json, "application/json")
        status = "success" if out.targets_met else "failed_validation"
        return {"status": status, **out.model_dump(mode="json")}


# --- the container contract (what ``ModalBackend`` calls, like every other backend) ---------------------------


@app.function(image=image, gpu=GPU, timeout=TIMEOUT_SECONDS, cpu=2.0, memory=4096)
def run_mesh_preview(input_uri: str) -> dict[str, Any]:
    """The ``mesh-preview`` step of a Dagster run: input envelope in, output envelope in the bundle."""
    return run_envelope(input_uri)


@app.function(image=image, gpu=GPU, timeout=TIMEOUT_SECONDS, cpu=2.0, memory=4096)
def run_mesh(input_uri: str) -> dict[str, Any]:
    """The ``mesh`` (volume mesh) step of a Dagster run: input envelope in, output envelope in the bundle."""
    return run_envelope(input_uri)
