"""What an XML model's spec may say: which XSD, how strictly, and assertions over the findings.

``xsd:`` names the schema: an ``.xsd`` uploaded next to the model, or a schema shipped with the worker
(``fmi2`` / ``fmi3``: the FMI model-description schemas fmpy ships). Without it, ``<model stem>.xsd`` beside
the model is used. ``xsd_includes:`` lists further uploaded ``.xsd`` files the main one includes or imports.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

TITLE = "XML"
SPEC_KEYS = ("xsd", "xsd_includes", "validation_mode", "assertions")
SPEC_FIELDS: dict[str, tuple[Any, Any]] = {
    "xsd": (str | None, Field(default=None, min_length=1, max_length=200)),
    "xsd_includes": (list[str], Field(default_factory=list, max_length=50)),
    "validation_mode": (Literal["strict", "lenient"] | None, None),
}
