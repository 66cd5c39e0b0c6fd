"""The throw-away process that actually loads the FMU binary and simulates it with fmpy.

One process per simulation: an FMU that segfaults or hangs takes only this process down, and the parent
(:mod:`validibot_pipelines.runtime.fmi.simulate`) turns that into a clear failed_validation.
Usage: ``python -m validibot_pipelines.runtime.fmi.child REQUEST.json`` → writes ``result.npy`` and
``child.json`` next to the request (mode ``probe``: only ``child.json``, the probe facts). It runs inside
the sandbox (:mod:`validibot_pipelines.runtime.sandbox`):
everything it writes is untrusted, and the parent checks it before anything reaches the output envelope.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

MAX_LOG_LINES = 200


def simulate(request: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    from fmpy import simulate_fmu

    log: list[str] = []

    def logger(_env: Any, instance: Any, status: int, category: Any, message: Any) -> None:
        if len(log) < MAX_LOG_LINES:
            text = message.decode(errors="replace") if isinstance(message, bytes) else str(message)
            cat = category.decode(errors="replace") if isinstance(category, bytes) else str(category)
            log.append(_clipped(f"[{cat}] {text}"))

    input_array = None
    if request.get("input_csv"):
        import numpy.lib.recfunctions  # noqa: F401 - genfromtxt structured arrays

        input_array = np.genfromtxt(request["input_csv"], delimiter=",", names=True)
    result = simulate_fmu(
        request["fmu"], validate=False, fmi_type="CoSimulation",
        start_time=request.get("start_time"), stop_time=request.get("stop_time"),
        step_size=request.get("step_size"), output_interval=request.get("step_size"),
        relative_tolerance=request.get("tolerance"), start_values=request.get("start_values") or {},
        output=request.get("outputs"), input=input_array, logger=logger,
    )
    np.save(request["result_path"], result, allow_pickle=False)
    time_reached = float(result["time"][-1]) if len(result) else None
    return {"ok": True, "simulation_time_reached": time_reached, "fmu_log": log}


def _clipped(text: str, limit: int = 1000) -> str:
    return text if len(text) <= limit else text[:limit] + f" … ({len(text) - limit:,} more characters)"


def probe(request: dict[str, Any]) -> dict[str, Any]:
    """fmpy's reading and schema validation of the model description (untrusted XML in a native parser)."""
    from validibot_pipelines.runtime.fmi.probe import probe_facts

    facts, problems = probe_facts(request["fmu"])
    return {"ok": True, "facts": facts.model_dump(mode="json"), "problems": [_clipped(p, 4000) for p in problems]}


MODES = {"simulate": simulate, "probe": probe}


def main() -> int:
    request_path = Path(sys.argv[1])
    request = json.loads(request_path.read_text())
    meta_path = request_path.with_name("child.json")
    try:
        meta = MODES[request.get("mode", "simulate")](request)
        code = 0
    except Exception as exc:  # reported to the parent as the model's problem, with fmpy's own words
        meta = {"ok": False, "error": _clipped(f"{type(exc).__name__}: {exc}", 4000)}
        code = 1
    meta_path.write_text(json.dumps(meta))
    return code


if __name__ == "__main__":
    sys.exit(main())
