"""One dynamic partition per XML model, keyed by its landing path (orchestration/names.py); its versions are
the materializations of that partition (data version = the SHA-256 of the bytes)."""

from dagster import DynamicPartitionsDefinition

xml_partitions = DynamicPartitionsDefinition(name="xml_models")
