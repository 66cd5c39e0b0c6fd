"""What every Modal app shares: the worker image and the envelope runner.

The image installs this project (runtime side) so the function body is the exact code the local, Docker and
Cloud Run backends run. Nothing stage-specific is baked in: the input envelope URI arrives per call.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import modal

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def worker_image(*extra_pip: str, apt: tuple[str, ...] = ()) -> modal.Image:
    """Debian slim + Python 3.11 (+ ``apt`` system libraries) + the runtime dependencies + the project source."""
    base = modal.Image.debian_slim(python_version="3.11")
    if apt:
        base = base.apt_install(*apt)
    return (
        base
        .pip_install("pydantic==2.14.3", "dagster-pipes==1.13.27", "google-cloud-storage==3.17.1",
                     "boto3==1.44.5", "PyYAML==6.0.3", "numpy==2.4.6", "pyarrow==26.0.1", *extra_pip)
        .add_local_python_source("validibot_pipelines")
    )


def run_envelope(input_uri: str, volume: Any | None = None, *, cache_volume: Any | None = None,
                 cache_dir: str | None = None) -> dict[str, Any]:
    """Run one input envelope with the shared entrypoint.

    ``cache_volume`` mounted at ``cache_dir`` holds inputs by checksum (``<sha256>.fmu``): it is reloaded first
    so an upload made just before the call is visible, and the worker takes inputs from there instead of
    downloading them. ``volume`` (an output volume) is committed after the run when running on Modal.
    """
    from validibot_pipelines.runtime.entrypoint import ENV_INPUT, execute

    os.environ[ENV_INPUT] = input_uri
    if cache_dir and cache_volume is not None and not modal.is_local():
        cache_volume.reload()
    out = execute(input_uri, log=lambda msg: print(msg, flush=True), input_cache_dir=cache_dir)
    if volume is not None and not modal.is_local():
        volume.commit()  # make files written under the mount visible to other containers and the control plane
    return out.model_dump(mode="json")
