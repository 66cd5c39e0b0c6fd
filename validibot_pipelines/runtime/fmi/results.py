"""Reading back what the sandboxed simulation child left, as the trusted side must: bounded and checked.

``child.json`` (the child's own account) and ``result.npy`` (the recorded time series) are untrusted: both are
read through the sandbox's safe reader (no links, size caps), then checked for shape — the time series has
``time`` and every recorded output, never runs backwards, and ends where the child says it ended — before
anything from them reaches the output envelope or the parquet artifact.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from validibot_pipelines.envelopes.bounds import clip
from validibot_pipelines.runtime.sandbox import UnsafeResult, copy_result, read_result

MAX_META_BYTES = 4 * 1024 * 1024
MAX_RESULT_BYTES = 512 * 1024 * 1024
MAX_LOG_LINES = 200
MAX_VALUE_CHARS = 4096


def child_meta(scratch: Path) -> dict[str, Any]:
    """``child.json``, size-bounded and shape-checked: a dict with ``ok``, an optional error and log lines."""
    meta = json.loads(read_result(scratch, scratch / "child.json", MAX_META_BYTES))
    if not isinstance(meta, dict) or not isinstance(meta.get("ok"), bool):
        raise ValueError("child.json is not a result record")
    log = meta.get("fmu_log", [])
    meta["fmu_log"] = [clip(str(line), 1000) for line in log[:MAX_LOG_LINES]] if isinstance(log, list) else []
    if meta.get("error") is not None:
        meta["error"] = clip(str(meta["error"]), 4000)
    return meta


def load_result(scratch: Path, recorded: list[str], meta: dict[str, Any]) -> Any:
    """The time series the child left, checked: a plain structured array with time and every output."""
    import numpy as np

    path = scratch / "result.npy"
    try:
        local = copy_result(scratch, path, scratch.parent / "result.npy", MAX_RESULT_BYTES)
    except UnsafeResult as exc:
        if "bytes, over" in str(exc):
            raise ValueError(f"{exc}; raise step_size or name fewer output_variables") from None
        raise
    result = np.load(local, allow_pickle=False)
    names = result.dtype.names or ()
    missing = [col for col in ["time", *recorded] if col not in names]
    if missing or result.ndim != 1:
        raise ValueError(f"result.npy lacks columns {', '.join(missing) or '(bad shape)'}")
    if len(result) and np.any(np.diff(result["time"]) < 0):
        raise ValueError("result.npy's time column goes backwards")
    reached = float(result["time"][-1]) if len(result) else None
    claimed = meta.get("simulation_time_reached")
    drift = abs(claimed - reached) if isinstance(claimed, int | float) else None
    if reached is not None and (drift is None or drift > 1e-9 * max(1, abs(reached))):
        raise ValueError(f"the process claimed to reach t={claimed!r} but its time series ends at t={reached}")
    return result


def unrecorded_values(meta: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Last values of the outputs fmpy cannot record (String, Binary as hex, Clock): plain JSON scalars only."""
    raw = meta.get("last_values") if isinstance(meta.get("last_values"), dict) else {}
    values: dict[str, Any] = {}
    for name in names:
        value = raw.get(name)
        values[name] = clip(value, MAX_VALUE_CHARS) if isinstance(value, str) else \
            value if isinstance(value, bool | int | float) or value is None else None
    return values


def last_values(result: Any, recorded: list[str]) -> dict[str, Any]:
    """The last sample of each recorded output: exact Python ints (64-bit too), floats, bools, nested lists."""
    if not len(result):
        return {col: None for col in recorded}
    return {col: result[col][-1].tolist() for col in recorded}


def write_parquet(result: Any, path: Path) -> None:
    """The time series as parquet: one column per variable; an FMI 3 array variable is one fixed-size list
    column of its elements in row-major order, its shape in the field metadata (``shape``: ``2x2``).

    Why a list column and not one column per element: the column keeps the variable's name, so the catalog,
    the spec and the file name the same thing, and a reader rebuilds the array with one reshape.
    """
    import numpy as np
    import pyarrow as pa  # pyarrow directly: pandas would add ~0.5 s of import to every worker start
    import pyarrow.parquet as pq

    fields, arrays = [], []
    for col in result.dtype.names:
        values = np.ascontiguousarray(result[col])
        if values.ndim == 1:
            array = pa.array(values)
            fields.append(pa.field(col, array.type))
        else:
            shape = values.shape[1:]
            flat = values.reshape(len(values), -1)
            array = pa.FixedSizeListArray.from_arrays(pa.array(flat.ravel()), flat.shape[1])
            fields.append(pa.field(col, array.type, metadata={"shape": "x".join(map(str, shape))}))
        arrays.append(array)
    pq.write_table(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), path)
