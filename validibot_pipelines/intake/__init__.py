"""Control-plane intake: cheap, byte-level checks on an upload before any worker touches it.

Intake turns uploads that would crash or endanger a worker (oversize files, zip bombs, zip-slip paths, hostile
XML, ...) into precise findings that name the file, the problem and the fix. It reads bytes only: it must never
import ``dagster`` or load native code, because it runs in the control plane on untrusted input.
"""

from validibot_pipelines.intake.common import (
    IntakeError,
    IntakeReport,
    format_bytes,
    sha256_file,
)
from validibot_pipelines.validators.fmi.intake import (
    BANNED_SUFFIXES,
    DEFAULT_FMU_LIMITS,
    LINUX_PLATFORMS,
    FmuCode,
    FmuLimits,
    check_fmu,
)

__all__ = [
    "BANNED_SUFFIXES",
    "DEFAULT_FMU_LIMITS",
    "LINUX_PLATFORMS",
    "FmuCode",
    "FmuLimits",
    "IntakeError",
    "IntakeReport",
    "check_fmu",
    "format_bytes",
    "sha256_file",
]
