"""Modal app for the FMI validator: ``modal deploy -m validibot_pipelines.validators.fmi.modal_app``.

``probe_fmu(input_uri)`` and ``run_fmi_simulation(input_uri)`` run the shared worker entrypoint — the same
code the local, Docker and Cloud Run backends run — on an image with fmpy. FMUs are cached by checksum on
the volume ``fmi-cache`` mounted at ``/fmus`` (``fmi-cache-test`` at ``/fmus-test`` when
``FMI_USE_TEST_VOLUME=1`` or ``VALIDIBOT_ENV=test`` at deploy time) as ``/<sha256>.fmu``; the control plane
(``ModalBackend``) uploads them before the call, and the worker verifies the checksum of what it reads there.
Input envelope, output envelope and artifacts live in the gs:// / s3:// execution bundle named by the envelope.
"""

from __future__ import annotations

import os
from typing import Any

import modal

from validibot_pipelines.environments import modal_volume_name
from validibot_pipelines.runtime.modal_app import run_envelope, worker_image
from validibot_pipelines.validators.fmi.settings import FMI_CACHE_VOLUME, FMI_TEST_FLAG

APP_NAME = "validibot-fmi"
# FMI_USE_TEST_VOLUME=1 or VALIDIBOT_ENV=test at deploy time: the same rule the control plane uses to upload.
VOLUME_NAME = modal_volume_name(FMI_CACHE_VOLUME, FMI_TEST_FLAG)
MOUNT = "/fmus-test" if VOLUME_NAME.endswith("-test") else "/fmus"
TIMEOUT_SECONDS = 3600

app = modal.App(APP_NAME)
fmu_volume = modal.Volume.from_name(VOLUME_NAME, create_if_missing=True)  # lazy: resolved at deploy/run
image = worker_image("fmi")


def cache_dir() -> str:
    """Where the function reads cached FMUs: the volume mount on Modal; ``VALIDIBOT_FMU_CACHE_DIR`` elsewhere.

    The override exists for ``.local()`` runs (tests, the local stand-in), where the mount path does not exist
    and the stand-in's folder plays the volume.
    """
    return os.environ.get("VALIDIBOT_FMU_CACHE_DIR") or MOUNT


@app.function(image=image, volumes={MOUNT: fmu_volume}, timeout=600, cpu=1.0, memory=1024)
def probe_fmu(input_uri: str) -> dict[str, Any]:
    """Probe the FMU named by the input envelope; returns the output envelope (also written to the bundle)."""
    return run_envelope(input_uri, cache_volume=fmu_volume, cache_dir=cache_dir())


@app.function(image=image, volumes={MOUNT: fmu_volume}, timeout=TIMEOUT_SECONDS, cpu=1.0, memory=2048)
def run_fmi_simulation(input_uri: str) -> dict[str, Any]:
    """Simulate the FMU named by the input envelope; returns the output envelope (also written to the bundle)."""
    return run_envelope(input_uri, cache_volume=fmu_volume, cache_dir=cache_dir())
