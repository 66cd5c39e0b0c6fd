"""The throw-away process that actually loads the FMU binary and simulates it with fmpy.

One process per simulation: an FMU that segfaults or hangs takes only this process down, and the parent
(:mod:`validibot_pipelines.validators.fmi.worker.simulate`) turns that into a clear failed_validation.
Usage: ``python -m validibot_pipelines.validators.fmi.worker.child REQUEST.json`` → writes ``result.npy`` and
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
CHILD_MODULE = "validibot_pipelines.validators.fmi.worker.child"
#: What a warm sandbox's parent imports before forking this module's children (runtime/sandbox/warm.py).
#: (Measured: what the first simulation in a fresh process imports lazily, ~20 ms per forked child otherwise.)
PRELOAD = ("numpy", "fmpy", "fmpy.simulation", "fmpy.model_description", "fmpy.fmi2", "fmpy.fmi3",
           "fmpy.validation", "lxml.etree", "encodings.cp437", "gzip", "zipfile",
           "validibot_pipelines.validators.fmi.worker.probe")


#: Types fmpy's recorder does not sample over time: their last value is read after every step instead.
UNRECORDED_TYPES = {"String", "Binary", "Clock"}
FMI_TYPES = {"co_simulation": "CoSimulation", "model_exchange": "ModelExchange"}
SOLVERS = {"cvode": "CVode", "euler": "Euler"}


def simulate(request: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    from fmpy import read_model_description, simulate_fmu

    log: list[str] = []

    def logger(_env: Any, instance: Any, status: int, category: Any, message: Any) -> None:
        if len(log) < MAX_LOG_LINES:
            text = message.decode(errors="replace") if isinstance(message, bytes) else str(message)
            cat = category.decode(errors="replace") if isinstance(category, bytes) else str(category)
            log.append(_clipped(f"[{cat}] {text}"))

    fmu, build_log = _platform_binary(request["fmu"], Path(request["result_path"]).parent)
    md = read_model_description(fmu, validate=False)
    input_array = None
    if request.get("input_csv"):
        import numpy.lib.recfunctions  # noqa: F401 - genfromtxt structured arrays

        input_array = np.genfromtxt(request["input_csv"], delimiter=",", names=True)
    outputs = request.get("outputs")
    unrecorded = [v for v in md.modelVariables if v.name in (outputs or []) and v.type in UNRECORDED_TYPES]
    last: dict[str, Any] = {}

    def step_finished(_time: float, recorder: Any) -> bool:
        for variable in unrecorded:
            last[variable.name] = _read_last(recorder.fmu, variable)
        return True

    solver = request.get("solver") or "cvode"
    result = simulate_fmu(
        fmu, validate=False, fmi_type=FMI_TYPES[request.get("interface", "co_simulation")],
        solver=SOLVERS[solver], start_time=request.get("start_time"), stop_time=request.get("stop_time"),
        step_size=request.get("step_size"), output_interval=request.get("step_size"),
        relative_tolerance=request.get("tolerance"), start_values=request.get("start_values") or {},
        output=outputs, input=input_array, logger=logger, step_finished=step_finished if unrecorded else None,
    )
    np.save(request["result_path"], result, allow_pickle=False)
    time_reached = float(result["time"][-1]) if len(result) else None
    return {"ok": True, "simulation_time_reached": time_reached, "fmu_log": log, "last_values": last,
            "unrecorded": [v.name for v in unrecorded], "build_log": build_log}


def _read_last(fmu: Any, variable: Any) -> Any:
    """The current value of a String/Binary/Clock variable, JSON-ready (binary as hex); None if unreadable."""
    try:
        values = getattr(fmu, "get" + variable.type)([variable.valueReference])
    except Exception:  # noqa: BLE001 - e.g. a clock read outside event mode: reported as not recorded
        return None
    value = values[0] if values else None
    if isinstance(value, bytes):
        return value.hex() if variable.type == "Binary" else value.decode("utf-8", errors="replace")
    return bool(value) if variable.type == "Clock" and value is not None else value


def _platform_binary(fmu: str, scratch: Path) -> tuple[str, str | None]:
    """The FMU itself, or — a source FMU without a binary for this platform — a folder with one built here.

    Built with fmpy's own support (:func:`fmpy.build.build_platform_binary`: CMake and the C compiler of the
    worker) inside this sandbox; the compiler's output is returned as the build log.
    """
    import zipfile

    import fmpy
    from fmpy import read_model_description

    md = read_model_description(fmu, validate=False)
    folder = fmpy.platform if md.fmiVersion.startswith(("1.", "2.")) else fmpy.platform_tuple
    with zipfile.ZipFile(fmu) as archive:
        names = archive.namelist()
        if any(n.startswith(f"binaries/{folder}/") and not n.endswith("/") for n in names) or \
                not any(n.startswith("sources/") and not n.endswith("/") for n in names):
            return fmu, None
        unzipped = scratch / "unzipped"
        archive.extractall(unzipped)
    return str(unzipped), _build(unzipped, scratch / "build")


def _build(unzipped: Path, build_dir: Path) -> str:
    """Run fmpy's CMake build with stdout/stderr captured into the log (it prints through subprocess)."""
    import os
    import shutil
    import subprocess

    from fmpy.build import build_platform_binary

    missing = [tool for tool in ("cmake", "cc") if shutil.which(tool) is None]
    if missing:
        raise SourceBuildFailed(f"the FMU ships only sources and this worker has no {' or '.join(missing)} to "
                                "compile them; install the packages in containers/apt-fmi.txt (gcc, cmake) in the "
                                "worker, or ship a binary for x86_64 Linux in the FMU")
    build_dir.mkdir(parents=True, exist_ok=True)
    log_path = build_dir / "build.log"
    with open(log_path, "w+b") as log:
        saved = os.dup(1), os.dup(2)
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            build_platform_binary(unzipped, build_dir=build_dir)
            ok = True
        except (subprocess.CalledProcessError, OSError) as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}"
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
        log.seek(0)
        text = log.read().decode(errors="replace")
    if not ok:
        raise SourceBuildFailed(f"compiling the FMU's sources failed ({error}); build log: {text[-3000:]}")
    return text[-8000:]


class SourceBuildFailed(RuntimeError):
    """The source FMU does not compile here: the model's fault, with the compiler's words."""


def _clipped(text: str, limit: int = 1000) -> str:
    return text if len(text) <= limit else text[:limit] + f" … ({len(text) - limit:,} more characters)"


def probe(request: dict[str, Any]) -> dict[str, Any]:
    """fmpy's reading and schema validation of the model description (untrusted XML in a native parser)."""
    from validibot_pipelines.validators.fmi.worker.probe import probe_facts

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
    except SourceBuildFailed as exc:
        meta = {"ok": False, "build_failed": True, "error": _clipped(str(exc), 4000)}
        code = 1
    except Exception as exc:  # reported to the parent as the model's problem, with fmpy's own words
        meta = {"ok": False, "error": _clipped(f"{type(exc).__name__}: {exc}", 4000)}
        code = 1
    meta_path.write_text(json.dumps(meta))
    return code


if __name__ == "__main__":
    sys.exit(main())
