"""The XML validator's registration: what it accepts, how it is checked, run, shown and demonstrated."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from validibot_pipelines.validators.registry import Validator
from validibot_pipelines.validators.xml import launch
from validibot_pipelines.validators.xml.attach import MIME_XSD, attach
from validibot_pipelines.validators.xml.intake import XmlLimits, check_xml

MIME_XML = "application/xml"
SAMPLES_DIR = Path(__file__).resolve().parent / "samples"


def limits(settings: Any) -> XmlLimits:
    return XmlLimits() if settings is None else XmlLimits(max_bytes=settings.xml_max_bytes)


def looks_complete(_suffix: str, _size: int, head: bytes, tail: bytes) -> bool:
    """A complete document ends with ``>`` (its root's closing tag, or a comment or PI after it); one that does
    not start like XML will not become XML by waiting. UTF-16 (a BOM) is judged by the settle time alone."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False
    return not head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"<") or tail.rstrip().endswith(b">")


def demo_samples(landing: Path, _copies: int) -> list[Path]:
    """A small building document with its schema and spec."""
    for name in ("building.xsd", "building.xml.validation.yaml", "building.xml"):  # the model last: complete set
        if not (landing / name).exists():
            shutil.copyfile(SAMPLES_DIR / name, landing / name)
    return [landing / "building.xml"]


def _assets() -> list[Any]:
    from validibot_pipelines.validators.xml.assets import ASSETS

    return ASSETS


VALIDATOR = Validator(
    name="xml", suffixes={".xml": MIME_XML}, partitions_attr="xml_partitions", intake_asset="xml_file",
    job_description="Intake → XSD validation in the sandbox → CEL checks for one XML model (partition = its SHA-256)",
    steps=(launch.VALIDATOR,), check=check_xml, limits=limits, looks_complete=looks_complete, assets=_assets,
    validate=launch.validate_in_process, summary=launch.summary, demo_samples=demo_samples, attach=attach,
    side_files={".xsd": MIME_XSD},
    key_values=("root_element", "error_count", "schema"),
)
