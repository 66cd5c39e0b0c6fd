"""What an XML model's spec may say: which XSD, how strictly, and assertions over the findings.

``xsd:`` names the schema: an ``.xsd`` uploaded next to the model, or a schema shipped with the worker
(``fmi2`` / ``fmi3``: the FMI model-description schemas fmpy ships). Without it, ``<model stem>.xsd`` beside
the model is used. ``xsd_includes:`` lists further uploaded ``.xsd`` files the main one includes or imports.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from validibot_pipelines.envelopes.base import check_leaf_name


def _plain_names(value: list[str]) -> list[str]:
    for name in value:
        check_leaf_name(name)  # ValueError: "… must be a plain file name …" worded by the spec loader
    return value

TITLE = "XML"
SPEC_KEYS = ("xsd", "xsd_includes", "validation_mode", "assertions")
SPEC_FIELDS: dict[str, tuple[Any, Any]] = {
    "xsd": (Annotated[str | None, AfterValidator(lambda v: v and check_leaf_name(v))],
            Field(default=None, min_length=1, max_length=200)),
    "xsd_includes": (Annotated[list[str], AfterValidator(_plain_names)], Field(default_factory=list, max_length=50)),
    "validation_mode": (Literal["strict", "lenient"] | None, None),
}
