"""Modal app for the XML validator: ``modal deploy -m validibot_pipelines.validators.xml.modal_app``.

``run_xml_validation(input_uri)`` runs the shared worker entrypoint — the same code the local, Docker and Cloud
Run backends run — on an image with lxml (and fmpy's FMI schemas as data). Envelopes and artifacts live in the
gs:// / s3:// execution bundle named by the envelope.
"""

from __future__ import annotations

from typing import Any

import modal

from validibot_pipelines.runtime.modal_app import run_envelope, worker_image

APP_NAME = "validibot-xml"

app = modal.App(APP_NAME)
image = worker_image("xml")


@app.function(image=image, timeout=900, cpu=1.0, memory=1024)
def run_xml_validation(input_uri: str) -> dict[str, Any]:
    """Validate the model named by the input envelope; returns the output envelope (also written to the bundle)."""
    return run_envelope(input_uri)
