"""Build the FMI coverage test FMUs ("every FMU the field ships") from the C sources in ``tests/fmi_cases/``.

One sub-folder per case holds ``model.c`` and ``modelDescription.xml`` (plus ``buildDescription.xml`` for an
FMI 3.0 source-only case); ``tests/fmi_cases/common/`` holds the shared FMI 2.0 / FMI 3.0 function sets
written for these tests. :func:`build_case` compiles a case with gcc against fmpy's FMI headers and packages
it as ``<out_dir>/<name>.fmu``: the binary goes to ``binaries/linux64/`` (FMI 2.0) or
``binaries/x86_64-linux/`` (FMI 3.0); a source-only case ships ``sources/`` instead and no binary.

The instantiation token / GUID is read from the committed modelDescription.xml and compiled in, so a binary
refuses a description it was not built for. Archives are reproducible (fixed timestamps and modes).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import NamedTuple
from xml.etree import ElementTree

from validibot_pipelines.validators.fmi.samples.build import _write_zip_atomically, fmi_headers_dir

CASES_DIR = Path(__file__).resolve().parent / "fmi_cases"
COMMON_DIR = CASES_DIR / "common"


class Case(NamedTuple):
    fmi_version: str  # "2.0" or "3.0"
    interfaces: tuple[str, ...]  # interface elements in modelDescription.xml
    source_only: bool  # ships sources/ and no binaries/
    description: str


CASES: dict[str, Case] = {
    "me_only_fmi2": Case("2.0", ("ModelExchange",), False, "ME only; der(x) = -x, y = exp(-t)"),
    "cs_and_me_fmi2": Case("2.0", ("ModelExchange", "CoSimulation"), False, "ME and CS; y = exp(-t)"),
    "me_only_fmi3": Case("3.0", ("ModelExchange",), False, "ME only; der(x) = -x, y = exp(-t)"),
    "cs_fmi3_types": Case("3.0", ("CoSimulation",), False, "CS; one output of every FMI 3.0 type, a Clock"),
    "cs_fmi3_arrays": Case("3.0", ("CoSimulation",), False, "CS; 1-D, 2x2 and structurally sized arrays"),
    "cs_fmi2_int_bool_string": Case("2.0", ("CoSimulation",), False, "CS; Integer/Boolean/String/Enum outputs"),
    "source_only_fmi2": Case("2.0", ("CoSimulation",), True, "CS as sources only; y = 1 + 2t"),
    "source_only_fmi3": Case("3.0", ("CoSimulation",), True, "CS as sources only (buildDescription); y = 1 + 2t"),
    "se_only_fmi3": Case("3.0", ("ScheduledExecution",), False, "Scheduled Execution only; counts activations"),
}
"""Every case, by name (= sub-folder of ``fmi_cases/`` = modelIdentifier = FMU file stem)."""


def build_case(name: str, out_dir: Path) -> Path:
    """Build case ``name`` into ``out_dir/<name>.fmu`` and return that path.

    Raises:
        ValueError: unknown case, or its modelDescription.xml disagrees with :data:`CASES`.
        RuntimeError: gcc is missing or failed (the message carries gcc's stderr).
    """
    if name not in CASES:
        raise ValueError(f"unknown FMI test case {name!r}; available: {', '.join(CASES)}")
    case = CASES[name]
    case_dir = CASES_DIR / name
    description = (case_dir / "modelDescription.xml").read_bytes()
    token = _check_description(name, case, description)
    core = "fmi2_core" if case.fmi_version == "2.0" else "fmi3_core"

    members: list[tuple[str, bytes, int]] = [("modelDescription.xml", description, 0o644)]
    if case.source_only:
        members += [
            ("sources/model.c", (case_dir / "model.c").read_bytes(), 0o644),
            (f"sources/{core}.c", (COMMON_DIR / f"{core}.c").read_bytes(), 0o644),
            (f"sources/{core}.h", (COMMON_DIR / f"{core}.h").read_bytes(), 0o644),
        ]
        if case.fmi_version == "3.0":
            members.append(("sources/buildDescription.xml", (case_dir / "buildDescription.xml").read_bytes(), 0o644))
    else:
        platform = "linux64" if case.fmi_version == "2.0" else "x86_64-linux"
        binary = _compile(name, [f"{name}/model.c", f"common/{core}.c"], token)
        members.append((f"binaries/{platform}/{name}.so", binary, 0o755))

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.fmu"
    _write_zip_atomically(target, members)  # the samples' reproducible writer: same bytes for the same sources
    return target


def build_all(out_dir: Path) -> dict[str, Path]:
    """Build every case into ``out_dir``; return ``{name: fmu_path}``."""
    return {name: build_case(name, out_dir) for name in CASES}


def _check_description(name: str, case: Case, description: bytes) -> str:
    """Check the committed modelDescription.xml against ``case``; return its GUID / instantiationToken."""
    root = ElementTree.fromstring(description)
    token = root.get("guid") if case.fmi_version == "2.0" else root.get("instantiationToken")
    interfaces = tuple(
        child.tag for child in root if child.tag in {"ModelExchange", "CoSimulation", "ScheduledExecution"}
    )
    identifiers = {child.get("modelIdentifier") for child in root if child.tag in interfaces}
    if root.get("fmiVersion") != case.fmi_version or interfaces != case.interfaces or identifiers != {name}:
        raise ValueError(f"{name}/modelDescription.xml does not match CASES[{name!r}] = {case}")
    if not token:
        raise ValueError(f"{name}/modelDescription.xml has no guid / instantiationToken")
    return token


def _compile(name: str, sources: list[str], token: str) -> bytes:
    """Compile ``sources`` (relative to ``fmi_cases/``) into a shared library and return its bytes."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError("building the FMI test cases needs gcc on PATH (e.g. `apt-get install gcc`)")
    with tempfile.TemporaryDirectory(prefix="validibot-fmi-case-") as tmp:
        output = Path(tmp) / f"{name}.so"
        command = [
            gcc, "-shared", "-fPIC", "-O1", "-std=c99", "-Wall", "-Wextra",
            "-fvisibility=hidden",  # export only the fmi2*/fmi3* functions, not the model hooks
            f"-ffile-prefix-map={CASES_DIR}=.", f"-frandom-seed={name}",
            f"-I{fmi_headers_dir()}", f"-I{COMMON_DIR}", f'-DFMU_GUID="{token}"',
            "-o", str(output), *sources, "-lm",
        ]  # fmt: skip
        result = subprocess.run(command, cwd=CASES_DIR, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0 or not output.is_file():
            raise RuntimeError(f"gcc failed to compile FMI test case {name!r}:\n{result.stderr.strip()}")
        return output.read_bytes()
