"""A model's name — its path in the landing zone relative to the landing root — as a Dagster partition key.

A partition is a model (``hvac/ahu_controller.fmu``); the SHA-256 of its bytes is the version (the intake
asset's data version), so a model's partition timeline is its history. Dagster refuses partition keys holding
``...`` or control characters, and ``,`` ``|`` ``[`` ``]`` break the CLI's comma lists and multi-partition keys,
so the key is the path with exactly these percent-encoded (UTF-8 bytes, ``%XX``):

* ``%`` itself (so decoding is exact),
* control characters (``\\x00``–``\\x1f``, ``\\x7f``), ``,`` ``|`` ``[`` ``]``,
* every ``.`` of a run of three or more dots.

Everything else — letters of any script, spaces, ``/`` — stays as typed, so "Filter by name…" in the UI finds
a model by what its author called it. :func:`model_path` (``urllib.parse.unquote``) is the exact inverse.

Object-store paths keyed by model (its intake record, the asset values) use :func:`store_path`: the key with
everything but ``/`` and unreserved characters quoted, so ``#`` ``?`` and friends can never be read as a URI
part.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote, unquote, urlparse

from validibot_pipelines.storage import leaf_name

_ESCAPED = frozenset("%,|[]")
_DOT_RUN = re.compile(r"\.{3,}")


def _escape(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode())


def partition_key(path: str) -> str:
    """The Dagster partition key of the model at ``path`` (relative to the landing root)."""
    escaped = "".join(_escape(c) if c in _ESCAPED or ord(c) < 0x20 or ord(c) == 0x7F else c for c in path)
    return _DOT_RUN.sub(lambda m: "%2E" * len(m.group()), escaped)


def model_path(key: str) -> str:
    """The model's path in the landing zone for a partition key (the inverse of :func:`partition_key`)."""
    return unquote(key)


def relative_name(landing_uri: str, source_uri: str) -> str:
    """``source_uri``'s path below ``landing_uri``; its file name when outside it (the CLI's files).

    ``file://`` URIs are compared decoded (``my%20land`` and ``my land`` are one folder), so how the landing
    root was spelled in the settings never turns two models into one name.
    """
    if source_uri.startswith("file://") and landing_uri.startswith("file://"):
        root = unquote(urlparse(landing_uri).path).rstrip("/") + "/"
        path = unquote(urlparse(source_uri).path)
        return path[len(root):] if path.startswith(root) else leaf_name(path)
    root = landing_uri.rstrip("/") + "/"
    return source_uri[len(root):] if source_uri.startswith(root) else leaf_name(source_uri)


def key_for_upload(landing_uri: str, source_uri: str) -> str:
    """The partition key of an upload at ``source_uri`` in the landing zone ``landing_uri``."""
    return partition_key(relative_name(landing_uri, source_uri))


_SEGMENT_BYTES = 160  # a store path segment plus a suffix (.validation.yaml) stays under a file system's 255


def store_path(key: str) -> str:
    """A partition key as a path in the object store: quoted, ``/`` kept; a segment too long for a file system
    (a model name of 250 bytes quotes to more) is cut and suffixed with the SHA-256 of the whole segment, so
    distinct names stay distinct. Only a lookup key: the record itself holds the model's name."""
    def segment(part: str) -> str:
        if part in ("", ".", ".."):  # never a path step of its own: a//b is not a/b, a/../x stays inside
            return {"": "%00", ".": "%2E", "..": "%2E%2E"}[part]
        quoted = quote(part, safe="")
        if len(quoted) <= _SEGMENT_BYTES:
            return quoted
        return f"{quoted[:100].rstrip('%0123456789ABCDEF')}~{hashlib.sha256(part.encode()).hexdigest()[:24]}"

    return "/".join(segment(part) for part in key.split("/"))


_SHA256 = re.compile(r"[0-9a-f]{64}")


def is_legacy_key(key: str) -> bool:
    """A partition made by an older validibot, keyed by the model's checksum instead of its name."""
    return bool(_SHA256.fullmatch(key))


def name_from(name_or_key: str) -> str:
    """A model named on the command line either way (``a,b.fmu`` or its key ``a%2Cb.fmu``) → its key.

    Text that already is a valid key is taken as one, so a path that itself holds ``%`` is given as its key
    (``100%25/a.fmu``), as the UI's Partitions tab shows it."""
    return name_or_key if partition_key(model_path(name_or_key)) == name_or_key else partition_key(name_or_key)
