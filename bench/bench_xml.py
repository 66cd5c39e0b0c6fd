"""Benchmark: the XML validation pipeline vs plain lxml on the same document and schema, one run.

    .venv/bin/python bench/bench_xml.py [REPEATS] [SPACES]

Raw: ``lxml.etree.XMLSchema(...).validate(...)`` in-process on a generated building document with SPACES
spaces (default 20,000: ~2 MB), REPEATS times (parse + validate each time). Pipeline: REPEATS byte-distinct
copies dropped into a landing zone with the schema and a spec, upload sensor tick, one Dagster run each
(intake with defusedxml → sandboxed worker → lxml → CEL checks). Prints both and the ratio.
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from pathlib import Path

SPEC = "xsd: building.xsd\nassertions:\n  - {name: clean, expr: 'o.error_count == 0'}\n"


def document(spaces: int, copy: int) -> str:
    rows = "\n".join(f'    <Space id="sp-{i}" volume="{100 + i % 50}"/>' for i in range(spaces))
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<!-- copy {copy} -->\n'
            f'<Campus xmlns="urn:validibot:demo:building" id="campus-1">\n  <Building id="b1">\n'
            f'    <Area>{spaces * 10}</Area>\n{rows}\n  </Building>\n</Campus>\n')


def main(repeats: int = 3, spaces: int = 20_000) -> None:
    warnings.filterwarnings("ignore")
    from bench_backfill import landing_run_seconds  # same folder (on sys.path when run as a script)
    from lxml import etree

    from validibot_pipelines.validators.xml.validator import SAMPLES_DIR

    xsd = SAMPLES_DIR / "building.xsd"
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = root / "raw.xml"
        model.write_text(document(spaces, -1))
        start = time.perf_counter()
        for _ in range(repeats):
            schema = etree.XMLSchema(etree.parse(str(xsd)))
            assert schema.validate(etree.parse(str(model))), schema.error_log
        raw = time.perf_counter() - start

        landing = root / "landing"
        landing.mkdir()
        (landing / "building.xsd").write_bytes(xsd.read_bytes())
        for i in range(repeats):
            (landing / f"campus{i}.xml.validation.yaml").write_text(SPEC)
            (landing / f"campus{i}.xml").write_text(document(spaces, i))
        pipeline = landing_run_seconds(root, landing, repeats)

    size = len(document(spaces, 0).encode())
    print(f"documents:                   {repeats} x {size / 1e6:.1f} MB ({spaces:,} spaces) against building.xsd")
    print(f"plain lxml (parse+validate): {raw:8.3f} s  ({raw / repeats:6.3f} s per document)")
    print(f"pipeline (Dagster runs):     {pipeline:8.3f} s  ({pipeline / repeats:6.3f} s per document)")
    print(f"overhead per validation:     {(pipeline - raw) / repeats:8.3f} s")
    print(f"ratio pipeline / plain lxml: {pipeline / raw:8.2f}x")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
