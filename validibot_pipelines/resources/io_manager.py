"""Asset values as JSON in the object store, one object per (asset, partition).

Why not Dagster's default pickle IO manager: (1) a backfill batch runs one step over several partitions
(``BackfillPolicy.multi_run``), and the default IO manager can only persist one partition per output;
(2) with a ``DockerRunLauncher`` every run lives in its own container, so step outputs must be in shared
storage (the same ``file://`` / ``gs://`` / ``s3://`` store the validators already use), not on a container
disk. Values are the JSON dicts the assets already return (records and output envelopes), so they are
readable with any tool.

Convention (the one Dagster's UPathIOManager uses when loading): a step over ONE partition stores and loads
the value itself; a step over several partitions stores and loads ``{partition_key: value}``.
"""

from __future__ import annotations

import json
from typing import Any

from dagster import ConfigurableIOManager, InputContext, OutputContext
from pydantic import Field

from validibot_pipelines.orchestration.names import store_path
from validibot_pipelines.storage import get_store, join_uri

UNPARTITIONED = "__all__"


class StoreIOManager(ConfigurableIOManager):
    """Persist asset outputs as ``<base_uri>/<asset key>/<partition>.json`` in the object store."""

    base_uri: str = Field(description="object-store prefix for asset values, e.g. <store>/dagster-io")

    def _uri(self, path: list[str], partition: str | None) -> str:
        return join_uri(self.base_uri, *path, f"{store_path(partition) if partition else UNPARTITIONED}.json")

    def handle_output(self, context: OutputContext, obj: Any) -> None:
        if obj is None:  # check outputs and Nothing-typed results carry no value
            return
        keys = list(context.asset_partition_keys) if context.has_asset_partitions else [None]
        values = obj if len(keys) > 1 else {keys[0]: obj}
        missing = set(keys) - set(values)
        if missing:
            raise ValueError(f"{context.asset_key.to_user_string()}: a step over {len(keys)} partitions must return "
                             f"{{partition_key: value}} for each; missing {sorted(missing)[:5]}")
        for key in keys:
            uri = self._uri(context.asset_key.path, key)
            get_store(uri).write_bytes(uri, json.dumps(values[key]).encode(), "application/json")

    def load_input(self, context: InputContext) -> Any:
        keys = list(context.asset_partition_keys) if context.has_asset_partitions else [None]
        values = {}
        for key in keys:
            uri = self._uri(context.asset_key.path, key)
            values[key] = json.loads(get_store(uri).read_bytes(uri))
        return values[keys[0]] if len(keys) == 1 else values
