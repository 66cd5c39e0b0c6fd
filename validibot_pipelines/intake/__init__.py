"""Control-plane intake: cheap, byte-level checks on an upload before any worker touches it.

Intake turns uploads that would crash or endanger a worker (oversize files, zip bombs, zip-slip paths, hostile
XML, ...) into precise findings that name the file, the problem and the fix. This package holds what every
validator shares; each validator's own checks live in its folder (``validators/<name>/intake.py``). It reads
bytes only: it must never import ``dagster`` or load native code, because it runs in the control plane on
untrusted input.
"""

from validibot_pipelines.intake.common import (
    IntakeError,
    IntakeReport,
    format_bytes,
    sha256_file,
)

__all__ = [
    "IntakeError",
    "IntakeReport",
    "format_bytes",
    "sha256_file",
]
