"""Reading back what the sandboxed simulation child left, as the trusted side must: bounded and checked.

``child.json`` (the child's own account) and ``result.npy`` (the recorded time series) are untrusted: both are
read through the sandbox's safe reader (no links, size caps), then checked for shape — the time series has
``time`` and every recorded output, never runs backwards, and ends where the child says it ended — before
anything from them reaches the output envelope or the parquet artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from validibot_pipelines.envelopes.bounds import clip
from validibot_pipelines.runtime.sandbox import UnsafeResult, copy_result, read_result

MAX_META_BYTES = 4 * 1024 * 1024
MAX_RESULT_BYTES = 512 * 1024 * 1024
MAX_LOG_LINES = 200
MAX_VALUE_CHARS = 4096


class ChildMeta(BaseModel):
    """What ``child.json`` may hold, strictly: anything else (nested JSON, wrong types) is refused."""

    model_config = ConfigDict(extra="ignore")

    ok: bool
    error: str | None = None
    build_failed: bool = False
    fmu_log: list[str] = Field(default_factory=list)
    last_values: dict[str, str | bool | int | float | None] = Field(default_factory=dict)
    unrecorded: list[str] = Field(default_factory=list)
    build_log: str | None = None
    simulation_time_reached: float | None = None


def child_meta(scratch: Path) -> dict[str, Any]:
    """``child.json``, size-bounded and validated against :class:`ChildMeta`; texts clipped."""
    raw = read_result(scratch, scratch / "child.json", MAX_META_BYTES)
    try:
        meta = ChildMeta.model_validate_json(raw)  # pydantic's JSON parser: no recursion limit to crash on
    except ValidationError as exc:
        raise ValueError(f"child.json is not a result record ({clip(str(exc), 300)})") from None
    data = meta.model_dump()
    data["fmu_log"] = [clip(line, 1000) for line in meta.fmu_log[:MAX_LOG_LINES]]
    data["error"] = clip(meta.error, 4000) if meta.error else None
    return data


#: numpy dtypes fmpy's recorder writes per FMI type (fmpy.simulation.Recorder).
FMPY_DTYPES = {"Real": "f8", "Integer": "i4", "Boolean": "?", "Float64": "f8", "Float32": "f4", "Int8": "i1",
               "UInt8": "u1", "Int16": "i2", "UInt16": "u2", "Int32": "i4", "UInt32": "u4", "Int64": "i8",
               "UInt64": "u8"}


def expected_columns(md: Any, recorded: list[str]) -> dict[str, Any]:
    """``time`` and each recorded output with the dtype and shape fmpy records it with (from the model
    description the trusted side read), so a result of any other layout is refused before it is used."""
    import numpy as np

    variables = {v.name: v for v in md.modelVariables}
    columns = {"time": np.dtype("f8")}
    for name in recorded:
        variable = variables[name]
        kind = variable.type
        if kind == "Enumeration":
            kind = "Integer" if md.fmiVersion.startswith(("1.", "2.")) else "Int64"
        base = np.dtype(FMPY_DTYPES[kind])
        columns[name] = np.dtype((base, tuple(variable.shape))) if variable.shape else base
    return columns


def load_result(scratch: Path, expected: dict[str, Any], meta: dict[str, Any]) -> Any:
    """The time series the child left, checked: exactly the expected columns (dtype and shape as fmpy records
    them), time finite and never running backwards, ending where the child says it ended."""
    import numpy as np

    path = scratch / "result.npy"
    try:
        local = copy_result(scratch, path, scratch.parent / "result.npy", MAX_RESULT_BYTES)
    except UnsafeResult as exc:
        if "bytes, over" in str(exc):
            raise ValueError(f"{exc}; raise step_size or name fewer output_variables") from None
        raise
    result = np.load(local, allow_pickle=False, mmap_mode="r")
    fields = result.dtype.fields or {}
    if result.ndim != 1 or set(fields) != set(expected):
        missing = sorted(set(expected) - set(fields))
        raise ValueError(f"result.npy lacks columns {', '.join(missing)}" if missing else
                         "result.npy does not have the columns the model description declares")
    wrong = [name for name, dtype in expected.items() if fields[name][0] != dtype]
    if wrong:
        raise ValueError(f"result.npy's columns {', '.join(wrong[:5])} do not have the type and shape the model "
                         "description declares")
    result = np.array(result)  # the layout is known to be what fmpy writes: now load it for real
    time = result["time"]
    if len(time) and not np.isfinite(time).all():
        raise ValueError("result.npy's time column holds NaN or infinite values")
    if len(time) and np.any(np.diff(time) < 0):
        raise ValueError("result.npy's time column goes backwards")
    reached = float(time[-1]) if len(time) else None
    claimed = meta.get("simulation_time_reached")
    if reached is not None and (claimed is None or not abs(claimed - reached) <= 1e-9 * max(1, abs(reached))):
        raise ValueError(f"the process claimed to reach t={claimed!r} but its time series ends at t={reached}")
    return result


def unrecorded_values(meta: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """Last values of the outputs fmpy cannot record (String, Binary as hex, Clock): plain JSON scalars only."""
    raw = meta.get("last_values") or {}
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
            array = _arrow(values)
            fields.append(pa.field(col, array.type))
        else:
            shape = values.shape[1:]
            flat = values.reshape(len(values), -1)
            array = pa.FixedSizeListArray.from_arrays(_arrow(flat.ravel()), flat.shape[1])
            fields.append(pa.field(col, array.type, metadata={"shape": "x".join(map(str, shape))}))
        arrays.append(array)
    pq.write_table(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), path)


def _arrow(values: Any) -> Any:
    """A 1-d numeric numpy array as an Arrow array over the same memory.

    Why not ``pa.array(values)``: for an ndarray it first asks pandas whether the object is one of its own,
    which imports pandas (measured: 0.5 s, once per worker process) for a result that never was a frame.
    """
    import numpy as np
    import pyarrow as pa

    if values.dtype == np.bool_:  # Arrow packs booleans one bit each, least significant first
        return pa.Array.from_buffers(pa.bool_(), len(values),
                                     [None, pa.py_buffer(np.packbits(values, bitorder="little"))])
    if values.dtype.kind not in "iuf":
        return pa.array(values.tolist())
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [None, pa.py_buffer(values)])
