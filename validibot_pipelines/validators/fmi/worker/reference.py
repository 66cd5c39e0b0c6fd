"""Compare a simulation result with a reference result (the FMI Cross-Check convention), with fmpy's own logic.

The reference is a CSV uploaded next to the model (``"time",<signal>...``, read with ``fmpy.util.read_csv``); each
signal it shares with the result is checked with ``fmpy.util.validate_signal``: a band around the reference,
``tolerance`` of the signal's range high and fmpy's default width, and the result samples outside it are
counted. This runs in the trusted worker: it reads two data files with numpy/scipy and runs no model code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from validibot_pipelines.validators.fmi.envelopes import ReferenceComparison, ReferenceSettings, SignalComparison

MAX_REFERENCE_BYTES = 50 * 1024 * 1024


class ReferenceInvalid(ValueError):
    """The reference CSV cannot be used: the message names the problem and the fix."""


def read_reference(reference_csv: Path) -> Any:
    """The reference CSV as ``fmpy.util.read_csv`` reads it (a structured array), size-capped and checked for a
    ``time`` column that never runs backwards, at least one signal and two rows."""
    import numpy as np
    from fmpy.util import read_csv

    size = reference_csv.stat().st_size
    if size > MAX_REFERENCE_BYTES:
        raise ReferenceInvalid(f"the reference result is {size:,} bytes, over {MAX_REFERENCE_BYTES:,}; thin it out "
                               "(the comparison resamples to 1000 points anyway)")
    try:
        reference = read_csv(reference_csv)
    except Exception as exc:  # noqa: BLE001 - fmpy's parser raises whatever numpy raises on a bad file
        raise ReferenceInvalid(f"the reference result cannot be read as a CSV ({type(exc).__name__}: {exc}); "
                               "write it as \"time\",<signal names> with one numeric row per sample") from None
    names = reference.dtype.names or ()
    if len(names) < 2 or names[0] != "time" or len(reference) < 2:
        raise ReferenceInvalid("the reference result needs a first column named time, at least one signal and at "
                               "least two rows")
    if np.any(np.diff(reference["time"]) < 0):
        raise ReferenceInvalid("the reference result's time column goes backwards; sort it by time")
    return reference


def compare(result: Any, reference: Any, file_name: str, settings: ReferenceSettings) -> ReferenceComparison:
    """Each signal of ``reference`` (from :func:`read_reference`) against the result's signal of that name."""
    import numpy as np
    from fmpy.util import validate_signal

    names = reference.dtype.names
    signals, missing = [], []
    for name in names[1:]:
        if name not in (result.dtype.names or ()) or result[name].ndim != 1:
            missing.append(name)
            continue
        y = np.asarray(result[name], dtype=np.float64)
        _t, _lo, _hi, outside = validate_signal(t=np.asarray(result["time"], dtype=np.float64), y=y,
                                                t_ref=np.array(reference["time"], dtype=np.float64),
                                                y_ref=np.asarray(reference[name], dtype=np.float64),
                                                dy=settings.tolerance)
        count = int(np.sum(outside))
        fraction = count / float(len(outside)) if len(outside) else 1.0
        signals.append(SignalComparison(name=name, samples=int(len(outside)), outliers=count,
                                        fraction_outside=round(fraction, 6),
                                        passed=fraction <= settings.max_outliers))
    return ReferenceComparison(file=file_name, tolerance=settings.tolerance,
                               max_outliers=settings.max_outliers, signals=signals, missing=missing,
                               passed=bool(signals) and all(s.passed for s in signals) and not missing)
