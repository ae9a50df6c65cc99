"""``shipyard build`` against hostile input: an environment record or a run record whose text would break
out of the Dockerfile (a newline starting an instruction, ``$`` expanded by Docker's parser), and an
--output that is not a new or empty folder (never emptied, never followed).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from shipyard.core.environments import image
from shipyard.errors import InvalidInputError

_INSTRUCTION = re.compile(r"(FROM|RUN|ENV|COPY|LABEL|USER|WORKDIR|EXPOSE|HEALTHCHECK|ENTRYPOINT) ")
EVIL = 'x"\nRUN touch /pwned #\r\n${HOME:?boom} $(id) \\'


def _env(**torch: Any) -> dict[str, Any]:
    return {"python": {"version": "3.11.9"}, "frameworks": {"torch": {"cuda": "12.1", "cudnn": "9.1",
                                                                       "version": "2.3.0+cu121", **torch}}}


def _spec(base: image.Base, **extra: Any) -> image.ImageSpec:
    return image.ImageSpec("iris", 1, "sha256:" + "0" * 64, None, "sklearn", "3.11", base,
                           "2026-01-01T00:00:00Z", "0.0", **extra)


def _instructions(text: str) -> list[str]:
    """The instruction each logical line starts with (comments and continuations skipped)."""
    found, continued = [], False
    for line in text.splitlines():
        if not continued and line.strip() and not line.startswith("#"):
            found.append(line.split(" ", 1)[0])
        continued = line.endswith("\\")
    return found


def test_an_environment_record_cannot_add_a_dockerfile_instruction() -> None:
    with pytest.raises(ValueError, match="CUDA version"):
        image.choose_base(_env(cuda="12.1\nRUN touch /pwned"))
    base = image.choose_base(_env(cudnn=EVIL, version=EVIL))
    assert base.image == "nvidia/cuda:12.1.1-cudnn-runtime-ubuntu24.04"
    expected = ["FROM", "ENV", "COPY", "COPY", "ENV", "LABEL", "USER", "WORKDIR", "EXPOSE", "HEALTHCHECK",
                "ENTRYPOINT"]
    assert _instructions(image.dockerfile(_spec(base), "shipyard/deps:x")) == expected
    assert _instructions(image.deps_dockerfile(base, "sha256:x")) == ["FROM", "RUN", "LABEL", "COPY"]


def test_a_label_from_a_run_record_keeps_its_text_and_expands_nothing() -> None:
    spec = _spec(image.Base("python:3.11-slim", "CPU"), revision=EVIL, source="https://h/$USER/${X:-y}.git")
    text = image.dockerfile(spec, "shipyard/deps:x")
    assert _instructions(text).count("LABEL") == 1 and "RUN" not in _instructions(text)
    label = next(line for line in text.splitlines() if "image.revision=" in line)
    # inside double quotes Docker reads \" \\ \$ as escapes: every $ is escaped, no newline or CR is left
    assert label.strip().removesuffix("\\").strip().endswith(r'="x\" RUN touch /pwned #  \${HOME:?boom} \$(id) \\"')
    assert r"https://h/\$USER/\${X:-y}.git" in text


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from sklearn.linear_model import LogisticRegression

    from shipyard.config import Settings
    from shipyard.core.registry.saving import save_model
    from shipyard.wiring import build, flavor

    root = tmp_path_factory.mktemp("buildattack")
    svc = build(Settings(home=root / ".shipyard", db_url=f"sqlite:///{root / 'meta.db'}",
                         store_path=root / ".shipyard" / "objects", actor="tester@ci"), root)
    x = [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [1.0, 1.0]]
    save_model(flavor("sklearn"), LogisticRegression().fit(x, [0, 1, 0, 1]), root / "m", examples=x)
    svc.registry.register("m", root / "m", trust_as_registrant=True)
    yield svc
    svc.close()


def test_output_that_is_not_a_new_or_empty_folder_is_refused_and_left_as_it_was(services: Any,
                                                                                tmp_path: Path) -> None:
    from shipyard.wiring import build_image

    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "empty", target_is_directory=True)
    (tmp_path / "empty").mkdir()
    file = tmp_path / "file"
    file.write_text("mine")
    environ = {"SHIPYARD_CACHE_DIR": str(tmp_path / "cache")}
    for output, why in ((full, "not empty"), (link, "not a folder"), (file, "not a folder")):
        with pytest.raises(InvalidInputError, match=why):
            build_image(services, "m@1", environ, output=output, engine=False)
    assert (full / "keep.txt").read_text() == "mine" and file.read_text() == "mine" and link.is_symlink()
    assert not any((tmp_path / "empty").iterdir())
