"""What a runner gets: the parsed envelope, staged local files, the output being built, and a logger."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from validibot_pipelines.envelopes import InputEnvelope, OutputEnvelope, ValidationArtifact
from validibot_pipelines.storage import get_store, join_uri
from validibot_pipelines.storage.base import CHUNK
from validibot_pipelines.storage.grant import active_session


def file_sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class RunContext:
    envelope: InputEnvelope
    workdir: Path
    files: dict[str, Path]  # role -> staged local path
    output: OutputEnvelope
    log: Callable[[str], None] = print
    metadata: dict[str, object] = field(default_factory=dict)

    def artifact_uri(self, name: str) -> str:
        """``<bundle>/artifacts/<name>``; on an access grant, the next of the grant's signed slots."""
        session = active_session()
        if session is not None:
            return session.artifact_uri(name)
        return join_uri(self.envelope.context.execution_bundle_uri, "artifacts", name)

    def store_artifact(self, path: Path, name: str, type_: str, mime_type: str) -> ValidationArtifact:
        """Upload a local result file into the execution bundle and list it on the output envelope."""
        uri = self.artifact_uri(name)
        get_store(uri).upload_file(path, uri, content_type=mime_type)
        artifact = ValidationArtifact(name=name, type=type_, mime_type=mime_type, uri=uri, sha256=file_sha256(path))
        self.output.artifacts.append(artifact)
        return artifact
