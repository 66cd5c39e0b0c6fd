"""Reading pipeline outcomes in tests: the findings/messages of one asset, and the shared bad-input assertion
(every case fails validation at its asset, with its stable code, in a message that names the file)."""

from __future__ import annotations

from typing import Any

#: The matches_reference check's description for a spec without ``reference:`` (assets/checks.py).
NO_REFERENCE = "no reference result in the spec (add `reference:` to compare)"


def errors(outcome: Any, asset: str) -> str:
    """All findings (intake) or messages (worker steps) of ``asset`` as ``[CODE] text`` joined by spaces."""
    out = outcome.outputs[asset]
    return " ".join(f"[{m['code']}] {m['text']}" for m in (out.get("findings") or out.get("messages") or []))


def assert_each_fails_naming_the_file(outcomes: dict[str, Any], cases: dict[str, tuple[str, str]]) -> None:
    """``cases`` maps each dropped upload's URI to the (asset, code) it must fail at."""
    assert set(outcomes) == set(cases)
    for uri, (asset, code) in cases.items():
        o = outcomes[uri]
        assert o.outputs[asset]["status"] == "failed_validation", (uri, errors(o, asset))
        assert f"[{code}]" in errors(o, asset), (uri, errors(o, asset))
        assert uri.rsplit("/", 1)[-1] in errors(o, asset)  # the message names the file
