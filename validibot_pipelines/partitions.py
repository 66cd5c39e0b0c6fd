"""Dynamic partitions of each registered validator: one per uploaded model (its ``partitions.py``)."""

from validibot_pipelines.validators.registry import validators

PARTITIONS_BY_KIND = {v.name: v.partitions for v in validators()}
