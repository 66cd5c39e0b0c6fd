"""Build the hostile test FMUs from ``tests/hostile/hostile.c`` — one FMU per attack, compiled by gcc here.

Each FMU is the committed C source compiled with ``-DATTACK=<n>`` (and ``-DTARGET="<folder>"`` for attacks
on a folder), packaged with the committed ``modelDescription.xml`` under a GUID unique to the attack.
"""

from __future__ import annotations

import re
import subprocess
import uuid
import zipfile
from pathlib import Path

from validibot_pipelines.validators.fmi.samples.build import COMMON_DIR, fmi_headers_dir

HERE = Path(__file__).resolve().parent / "hostile"
ATTACKS = {"env_secrets": 1, "tamper": 2, "kill_parent": 3, "orphan": 4, "memory": 5, "huge_stderr": 6,
           "fork_bomb": 7, "cpu_burn": 8, "file_size": 9, "forge": 10, "huge_log": 11, "store": 12, "sysv_ipc": 13}


def build_hostile(attack: str, out_dir: Path, target: Path | str = "/nonexistent", name: str | None = None) -> Path:
    """Compile the ``attack`` FMU into ``out_dir/<name or hostile_<attack>>.fmu`` and return its path."""
    guid = "{" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"validibot-hostile/{attack}/{target}")) + "}"
    out_dir.mkdir(parents=True, exist_ok=True)
    library = out_dir / f"hostile-{attack}.so"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O1", "-fvisibility=hidden", f"-I{fmi_headers_dir()}", f"-I{COMMON_DIR}",
         f'-DFMU_GUID="{guid}"', f"-DATTACK={ATTACKS[attack]}", f'-DTARGET="{target}"', "-o", str(library),
         str(HERE / "hostile.c"), *map(str, sorted(COMMON_DIR.glob("*.c"))), "-lm"],
        check=True, capture_output=True, text=True)
    description = re.sub(r'\bguid="[^"]*"', f'guid="{guid}"', (HERE / "modelDescription.xml").read_text())
    fmu = out_dir / f"{name or 'hostile_' + attack}.fmu"
    with zipfile.ZipFile(fmu, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("modelDescription.xml", description)
        zf.writestr("binaries/linux64/hostile.so", library.read_bytes())
    library.unlink()
    return fmu
