"""Build the sample FMI 2.0 Co-Simulation FMUs from the C sources in ``fmus/``.

Why build instead of committing ``.fmu`` files: the repository then holds only reviewable sources, and the binary
always matches the machine that runs it (``binaries/linux64``). Builds are reproducible on a given toolchain: the
same ``(name, variant)`` gives a byte-identical FMU (deterministic GUID, fixed zip timestamps and attributes,
compiler output free of build paths). That matters because the pipeline deduplicates FMUs by SHA-256, so a rebuilt
sample must hash the same, while a different ``variant`` must hash differently (benchmarks use many variants of
``first_order_lag`` as distinct uploads).

Usage: ``python -m validibot_pipelines.validators.fmi.samples.build OUT_DIR [NAME ...] [--variant V]``.

This module deliberately imports neither dagster nor fmpy's native parts: fmpy is only located (for its FMI C
headers) with :func:`importlib.util.find_spec`.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
import zipfile
from collections.abc import Sequence
from pathlib import Path
from xml.etree import ElementTree

SAMPLE_FMUS: tuple[str, ...] = ("first_order_lag", "multi_output", "crash", "hang")
"""Every sample model, by modelIdentifier (= directory under ``fmus/``)."""

GOOD_SAMPLES: tuple[str, ...] = ("first_order_lag", "multi_output")
"""Samples that simulate to completion; ``crash`` and ``hang`` exist to exercise failure handling."""

SAMPLES_DIR = Path(__file__).resolve().parent  # sources in fmus/, demo specs beside this file
FMUS_DIR = SAMPLES_DIR / "fmus"
COMMON_DIR = FMUS_DIR / "common"

# Fixed namespace so GUIDs are a pure function of (name, variant); changing it would change every sample's hash.
_GUID_NAMESPACE = uuid.UUID("175e8afd-4029-4b18-a46c-019703bd658b")
# Earliest timestamp a zip entry can carry: any fixed value works, this one is the conventional choice.
_ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
# Names and variants end up in file names and in XML, so keep them to a conservative character set.
_SAFE_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ROOT_TAG = re.compile(r"<fmiModelDescription\b[^>]*>")
_PLATFORM = "linux64"
_COMPILE_TIMEOUT_S = 120


def fmi_headers_dir() -> Path:
    """Return fmpy's directory of FMI C headers (``fmi2Functions.h`` ...) without importing fmpy.

    fmpy is already a runtime dependency and ships the official headers, so the samples need no vendored copy.
    """
    spec = importlib.util.find_spec("fmpy")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("fmpy is not installed; it provides the FMI C headers needed to build sample FMUs")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "c-code"
        if (candidate / "fmi2Functions.h").is_file():
            return candidate
    raise RuntimeError(f"fmpy at {list(spec.submodule_search_locations)} has no c-code/fmi2Functions.h")


def fmu_guid(name: str, variant: str | None = None) -> str:
    """Return the deterministic GUID of sample ``name`` built as ``variant``, in FMI's ``{...}`` form.

    A uuid5 (not uuid4) so that rebuilding yields identical bytes, yet each variant is a distinct FMU to importers.
    """
    key = name if variant is None else f"{name}\n{variant}"
    return "{" + str(uuid.uuid5(_GUID_NAMESPACE, key)) + "}"


def fmu_filename(name: str, variant: str | None = None) -> str:
    """Return the file name :func:`build_fmu` writes: ``<name>.fmu`` or ``<name>-<variant>.fmu``."""
    return f"{name}.fmu" if variant is None else f"{name}-{variant}.fmu"


def build_fmu(name: str, out_dir: Path, variant: str | None = None) -> Path:
    """Compile sample ``name`` and package it as ``out_dir/<name>[-<variant>].fmu``; return that path.

    ``variant`` (letters, digits, ``._-``) is appended to the modelDescription ``description`` and also selects
    the GUID, so each variant is byte-different while any one (name, variant) is reproducible. An existing file
    is replaced atomically, so concurrent builders never expose a half-written FMU.

    Raises:
        ValueError: unknown sample name or unsafe variant.
        RuntimeError: gcc is missing or the compile failed (message includes the compiler's stderr).
    """
    model_dir = _model_dir(name)
    if variant is not None and not _SAFE_TOKEN.fullmatch(variant):
        raise ValueError(f"variant must match {_SAFE_TOKEN.pattern!r}, got {variant!r}")

    guid = fmu_guid(name, variant)
    model_description = _model_description(model_dir / "modelDescription.xml", name, guid, variant)
    binary = _compile(name, guid)

    members = [
        ("modelDescription.xml", model_description, 0o644),
        (f"binaries/{_PLATFORM}/{name}.so", binary, 0o755),
    ]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / fmu_filename(name, variant)
    _write_zip_atomically(target, members)
    return target


def _model_dir(name: str) -> Path:
    """Resolve and check the source directory of sample ``name``."""
    model_dir = FMUS_DIR / name
    if (
        not _SAFE_TOKEN.fullmatch(name)
        or name == COMMON_DIR.name
        or not (model_dir / "model.c").is_file()
        or not (model_dir / "modelDescription.xml").is_file()
    ):
        raise ValueError(f"unknown sample FMU {name!r}; available: {', '.join(SAMPLE_FMUS)}")
    return model_dir


def _model_description(path: Path, name: str, guid: str, variant: str | None) -> bytes:
    """Return the committed modelDescription.xml with ``guid`` (and the variant) set on the root element.

    Edited as text rather than re-serialised through ElementTree so the committed file's layout and comments
    survive byte for byte; the result is parsed afterwards as a sanity check.
    """
    text = path.read_text(encoding="utf-8")
    match = _ROOT_TAG.search(text)
    if match is None:
        raise ValueError(f"{path}: no <fmiModelDescription> element")
    tag, count = re.subn(r'\bguid="[^"]*"', f'guid="{guid}"', match.group(0))
    if count != 1:
        raise ValueError(f"{path}: root element must have exactly one guid attribute")
    if variant is not None:
        # variant is restricted to _SAFE_TOKEN characters, so it needs no XML escaping.
        tag, count = re.subn(r'\bdescription="([^"]*)"', rf'description="\1 [variant {variant}]"', tag)
        if count != 1:
            raise ValueError(f"{path}: root element must have exactly one description attribute")
    text = text[: match.start()] + tag + text[match.end() :]

    root = ElementTree.fromstring(text.encode("utf-8"))
    co_simulation = root.find("CoSimulation")
    if root.get("fmiVersion") != "2.0" or co_simulation is None or co_simulation.get("modelIdentifier") != name:
        raise ValueError(f"{path}: expected an FMI 2.0 Co-Simulation description with modelIdentifier {name!r}")
    return text.encode("utf-8")


def _compile(name: str, guid: str) -> bytes:
    """Compile ``<name>/model.c`` with the shared boilerplate into a shared library and return its bytes.

    gcc runs inside ``fmus/`` with relative source paths and ``-ffile-prefix-map`` so no absolute path of this
    checkout or of the temp dir reaches the binary; without ``-g`` and ``__FILE__`` the output is then a
    function of the sources, the GUID and the toolchain only. The GUID is compiled in so the binary refuses to
    be instantiated under a modelDescription it was not built for.
    """
    gcc = shutil.which("gcc")
    if gcc is None:
        raise RuntimeError(
            "building sample FMUs needs the C compiler gcc, which is not on PATH; "
            "install it (e.g. `apt-get install gcc`)"
        )
    sources = [f"{name}/model.c", *(f"{COMMON_DIR.name}/{p.name}" for p in sorted(COMMON_DIR.glob("*.c")))]
    with tempfile.TemporaryDirectory(prefix="validibot-fmu-build-") as tmp:
        output = Path(tmp) / f"{name}.so"
        command = [
            gcc,
            "-shared",
            "-fPIC",
            "-O1",
            "-fvisibility=hidden",  # export only the fmi2* functions (FMI2_Export), not the model hooks
            f"-ffile-prefix-map={FMUS_DIR}=.",
            f"-frandom-seed={name}",
            f"-I{fmi_headers_dir()}",
            f"-I{COMMON_DIR}",
            f'-DFMU_GUID="{guid}"',
            "-o",
            str(output),
            *sources,
            "-lm",
        ]
        try:
            result = subprocess.run(
                command,
                cwd=FMUS_DIR,
                env={**os.environ, "LC_ALL": "C"},
                capture_output=True,
                text=True,
                timeout=_COMPILE_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(
                f"gcc could not build sample FMU {name!r}: {exc}; check the C toolchain (e.g. `apt-get install gcc`)"
            ) from exc
        if result.returncode != 0 or not output.is_file():
            raise RuntimeError(
                f"gcc failed to compile sample FMU {name!r} (exit code {result.returncode}); "
                f"check the C toolchain (e.g. `apt-get install gcc`). Compiler stderr:\n{result.stderr.strip()}"
            )
        return output.read_bytes()


def _write_zip_atomically(target: Path, members: Sequence[tuple[str, bytes, int]]) -> None:
    """Write ``members`` (arcname, data, unix mode) as a reproducible zip at ``target``.

    Fixed timestamps, modes, creator system and compression level make the archive bytes depend on the content
    only. Written to a temp file in the same directory, then renamed over ``target``.
    """
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle, zipfile.ZipFile(handle, "w") as archive:
            for arcname, data, mode in members:
                info = zipfile.ZipInfo(arcname, date_time=_ZIP_DATE_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.create_system = 3  # Unix, so external_attr carries the file mode
                info.external_attr = (0o100000 | mode) << 16
                archive.writestr(info, data, compresslevel=9)
        os.chmod(tmp_name, 0o644)  # mkstemp creates 0600; an FMU is not secret
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build the named samples (default: all) into OUT_DIR and print each FMU's path."""
    parser = argparse.ArgumentParser(
        prog="python -m validibot_pipelines.validators.fmi.samples.build",
        description="Build the validibot sample FMI 2.0 Co-Simulation FMUs from their C sources (needs gcc).",
    )
    parser.add_argument("out_dir", type=Path, help="directory to write the .fmu files to (created if missing)")
    parser.add_argument("names", nargs="*", help=f"samples to build (default: all of {', '.join(SAMPLE_FMUS)})")
    parser.add_argument("--variant", help="variant tag: gives a byte-different FMU with its own GUID")
    args = parser.parse_args(argv)

    try:
        for name in args.names or SAMPLE_FMUS:
            print(build_fmu(name, args.out_dir, variant=args.variant))
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
