"""Byte-compile the package before a benchmark, as installing it from a wheel does.

Why: pip compiles a wheel's modules when it installs them, and the worker images install the package that way;
an editable install (the README's) does not, and on a machine with ``PYTHONDONTWRITEBYTECODE=1`` set (these
VMs) Python then never caches them, so every process of a validation — the CLI, the worker, each lane's
sandbox — compiles the package's modules from source each time. The benchmarks measure the pipeline as
deployed, so they compile first (``compileall`` skips what is up to date; ``__pycache__`` is git-ignored).
"""

from __future__ import annotations

import compileall
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "validibot_pipelines"


def compile_package() -> None:
    compileall.compile_dir(str(PACKAGE), quiet=1)
