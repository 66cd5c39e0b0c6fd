"""One dynamic partition per IDF / epJSON model, keyed by its landing path (orchestration/names.py); its versions
are the materializations of that partition (data version = the SHA-256 of the bytes)."""

from dagster import DynamicPartitionsDefinition

energyplus_partitions = DynamicPartitionsDefinition(name="energyplus_models")
