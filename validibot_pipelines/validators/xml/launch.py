"""XML validator, control-plane side: launch the schema validation, evaluate the CEL assertions.

lxml never parses a user's schema here: the validation is one envelope handed to the backend (the ``xml``
runner validates inside the sandbox). ``o`` = the validation's counts and verdict, ``p`` = what intake read
(root element, namespace, element count, depth, the document's own schemaLocation), ``i`` = the spec's inputs.
"""

from __future__ import annotations

from typing import Any

from validibot_pipelines import __version__
from validibot_pipelines.assertions import AssertionResult, evaluate_assertions
from validibot_pipelines.envelopes import OutputEnvelope, ValidatorRef
from validibot_pipelines.orchestration.launch import Backend, launch_step, model_run_id, model_tags
from validibot_pipelines.orchestration.models import ModelRecord
from validibot_pipelines.resources.backends.base import LaunchRecord
from validibot_pipelines.validators.xml.attach import SCHEMA_ROLE, schema_name
from validibot_pipelines.validators.xml.envelopes import XMLExpected, XMLInputs

VALIDATOR = ValidatorRef(id="xml", type="xml", version=__version__)
CEL_OUTPUTS = ("valid", "error_count", "warning_count", "element_count", "root_element", "namespace",
               "schema_name", "validation_mode")


def xml_inputs(record: ModelRecord, timeout_seconds: float = 120) -> XMLInputs:
    spec = record.validation_spec()
    schema = next((r for r in record.resources if r.role == SCHEMA_ROLE and r.name == schema_name(record)), None)
    facts = record.facts
    expected = XMLExpected(root_element=facts["root_element"], namespace=facts.get("namespace"),
                           element_count=facts["element_count"]) if facts.get("element_count") else None
    return XMLInputs(schema_name=schema_name(record), schema_uri=schema.uri if schema else None,
                     validation_mode=spec.validation_mode or "strict", timeout_seconds=timeout_seconds,
                     expected=expected)


def validate_schema(
    record: ModelRecord, *, store_uri: str, backend: Backend, attempt: str, validation_timeout_seconds: float = 120,
    timeout_seconds: int = 3600, context: Any = None,
) -> tuple[OutputEnvelope | None, LaunchRecord]:
    inputs = xml_inputs(record, validation_timeout_seconds)
    return launch_step(
        store_uri=store_uri, run_id=model_run_id(record, "xml", attempt), validator=VALIDATOR,
        files=[record.input_file("primary-model"), *record.resources], inputs=inputs.model_dump(mode="json"),
        backend=backend, timeout_seconds=timeout_seconds, context=context,
        tags=model_tags(record),
    )


def check(record: ModelRecord, out: OutputEnvelope) -> list[AssertionResult]:
    """``o.error_count == 0``, ``o.warning_count < 5``, ``p.root_element == 'gbXML'``, …"""
    spec = record.validation_spec()
    if not spec.assertions:
        return []
    outputs = {key: out.outputs.get(key) for key in CEL_OUTPUTS}
    return evaluate_assertions(spec.assertions, inputs=dict(spec.inputs), outputs=outputs, probe=dict(record.facts))


def validate_in_process(record: ModelRecord, *, store_uri: str, backend: Backend, attempt: str,
                        simulation_timeout_seconds: float = 120) -> OutputEnvelope:
    """``validibot validate``: the schema validation, then the assertions (the CLI's timeout bounds it)."""
    from validibot_pipelines.orchestration.single import judged

    out, _ = validate_schema(record, store_uri=store_uri, backend=backend, attempt=attempt,
                             validation_timeout_seconds=simulation_timeout_seconds)
    return judged(record, out, check)


def summary(out: OutputEnvelope) -> list[str]:
    """``validibot validate``'s line for an XML model: root element, schema, mode and counts."""
    o = out.outputs
    if "error_count" not in o:
        return []
    return [f"  xml: <{o['root_element']}> ({o.get('namespace') or 'no namespace'}) against {o['schema_name']} "
            f"({o['validation_mode']}): {o['error_count']} error(s), {o['warning_count']} warning(s), "
            f"{o['element_count']} elements"]
