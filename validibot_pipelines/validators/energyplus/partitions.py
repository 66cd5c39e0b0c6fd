"""One dynamic partition per uploaded IDF / epJSON model, keyed by the SHA-256 of its bytes."""

from dagster import DynamicPartitionsDefinition

energyplus_partitions = DynamicPartitionsDefinition(name="energyplus_models")
