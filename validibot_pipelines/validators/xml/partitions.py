"""One dynamic partition per uploaded XML model, keyed by the SHA-256 of its bytes."""

from dagster import DynamicPartitionsDefinition

xml_partitions = DynamicPartitionsDefinition(name="xml_models")
