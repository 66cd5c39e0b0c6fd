"""What every Modal app shares: the worker image and the envelope runner.

The image installs this project (runtime side) so the function body is the exact code the local, Docker and
Cloud Run backends run. Nothing stage-specific is baked in: the input envelope URI arrives per call.
"""

from __future__ import annotations

import os
from typing import Any

import modal

from validibot_pipelines.validators import image_lists


def worker_image(variant: str) -> modal.Image:
    """Debian slim + Python 3.11 + the validator's system libraries and pinned runtime dependencies
    (``validators/<variant>/image/``, the lists the Docker image installs) + the project source."""
    packages = image_lists(variant)
    image = modal.Image.debian_slim(python_version="3.11")
    image = image.apt_install("bubblewrap", *packages.apt)  # bubblewrap: as in containers/Dockerfile
    image = image.pip_install(*packages.pip)
    if packages.pip_no_deps:
        image = image.pip_install(*packages.pip_no_deps, extra_options="--no-deps")
    # bubblewrap inside Modal's container where its runtime allows it, else the container is the sandbox and the
    # model's child gets a scrubbed environment and rlimits.
    return image.env({"VALIDIBOT_SANDBOX": "auto"}).add_local_python_source("validibot_pipelines")


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
