"""Two machines share one metadata database and keep their stores local: `models push` / `models pull` move a
version's objects through a remote, and load, reproduce and `data pull` on the other machine fetch what they
lack from the default remote by themselves (or from the store itself when it lives in S3).

A "machine" is a project folder with its own ``.shipyard`` (its own store); both name the same database.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.dummy import DummyClassifier

from shipyard.adapters.executors.local import LocalExecutor
from shipyard.adapters.remotes.folder import FolderRemote
from shipyard.config import Settings, load_settings
from shipyard.core.artifacts.digest import Digest, object_key
from shipyard.core.artifacts.manifest import Manifest
from shipyard.core.pipelines.reproduce import reproduce
from shipyard.core.registry import objects
from shipyard.core.registry.records import ModelVersion
from shipyard.core.registry.saving import save_model
from shipyard.errors import IntegrityError, NotFoundError
from shipyard.ports import Remote
from shipyard.wiring import Services, build, default_remote, open_named_remote
from tests.conftest import cli_env, make_bucket, shipyard


def machine(root: Path, db_url: str, yaml: str = "", **environ: str) -> Settings:
    """The settings of a machine whose project is ``root`` (made, with ``yaml`` as its shipyard.yaml)."""
    root.mkdir(parents=True, exist_ok=True)
    if yaml:
        (root / "shipyard.yaml").write_text(yaml)
    return load_settings({"SHIPYARD_HOME": str(root / ".shipyard"), "SHIPYARD_DB_URL": db_url,
                          "SHIPYARD_ACTOR": f"{root.name}@team", **environ}, root)


def folder_remote(path: Path) -> str:
    path.mkdir(exist_ok=True)
    return f"remotes:\n  team:\n    url: {path}\ndefault_remote: team\n"


@pytest.fixture
def two(tmp_path: Path) -> Iterator[tuple[Services, Services, Path]]:
    """Machines A and B over one SQLite database and one folder remote; A has registered iris@1 (a check
    recorded too) and set iris@production to it. Yields A, B and the remote's folder."""
    remote = tmp_path / "remote"
    db = f"sqlite:///{tmp_path / 'team.db'}"
    a = build(machine(tmp_path / "A", db, folder_remote(remote)))
    b = build(machine(tmp_path / "B", db, folder_remote(remote)))
    mv = register(a, tmp_path)
    a.registry.record_result(mv, "verify", {"status": "pass"}, "passed in a venv")
    a.registry.set_alias("iris", "production", 1)
    yield a, b, remote
    a.close()
    b.close()


def register(svc: Services, tmp_path: Path, run_id: str | None = None, constant: int = 1) -> ModelVersion:
    folder = tmp_path / f"saved-{constant}"
    save_model(svc.registry.flavors("sklearn"), DummyClassifier(strategy="constant", constant=constant)
               .fit([[0, 0]] * 2, [constant] * 2), folder, [[0.0, 0.0]], {})
    return svc.registry.register("iris", folder, run_id=run_id)


def stored(svc: Services) -> set[Digest]:
    return {d for d, _, _ in svc.store.iter_objects()}


def remote_path(remote: Path, digest: Digest) -> Path:
    return remote / object_key(digest)


def test_push_then_pull_moves_every_object_of_a_version(tmp_path: Path, db_url: str) -> None:
    """The CLI on both machines, through the shared database: A pushes iris@production, B pulls iris (the
    latest) and holds every object the version needs; a second push or pull moves nothing."""
    remote = tmp_path / "remote"
    a_root, b_root = tmp_path / "A", tmp_path / "B"
    a = build(machine(a_root, db_url, folder_remote(remote)))
    b_settings = machine(b_root, db_url, folder_remote(remote))
    mv = register(a, tmp_path)
    check = a.registry.record_result(mv, "verify", {"status": "pass"}, "passed")
    a.registry.set_alias("iris", "production", 1)
    needed = {o.digest for o in objects.version_objects(a.store, a.meta, mv)}
    assert {mv.manifest_digest, mv.env_digest, mv.examples_digest, Digest.parse(check.new or "")} <= needed
    assert len(needed) == 6  # the manifest, 3 files (model, description, examples), environment, verify record
    a.close()

    def env(home: Path) -> dict[str, str]:
        return cli_env(SHIPYARD_HOME=str(home / ".shipyard"), SHIPYARD_DB_URL=db_url)

    pushed = json.loads(shipyard("models", "push", "iris@production", "--json", env=env(a_root), cwd=a_root).stdout)
    assert pushed["ref"] == "iris@1" and pushed["objects"] == len(needed) == pushed["transferred"]
    assert pushed["bytes"] > 0 and all(remote_path(remote, d).is_file() for d in needed)

    shown = shipyard("models", "pull", "iris", env=env(b_root), cwd=b_root).stdout
    assert shown.strip() == (f"pulled iris@1 from {remote.resolve()}: {len(needed)} objects, "
                             f"{shown.split(', ')[1].split(';')[0]}; 0 of {len(needed)} already here")
    b = build(b_settings)
    try:
        assert needed <= stored(b)
        assert b.registry.load("iris@production").predict([[5.0, 5.0]]).tolist() == [1]
        again = objects.pull(b.store, b.meta, mv, open_named_remote_of(b))
        assert (again.transferred, again.already) == (0, len(needed))
    finally:
        b.close()


def open_named_remote_of(svc: Services) -> Remote:
    from shipyard.core.project.loader import load_config

    root = svc.settings.project_root
    return open_named_remote(load_config(root), root, None)


def test_pull_of_a_version_nobody_pushed_fails_in_one_line_and_writes_nothing(
        two: tuple[Services, Services, Path], tmp_path: Path) -> None:
    a, b, remote = two
    before = stored(b)
    done = shipyard("models", "pull", "iris@production", check=False, cwd=b.settings.project_root,
                    env=cli_env(SHIPYARD_HOME=str(b.settings.home), SHIPYARD_DB_URL=b.settings.db_url))
    assert done.returncode == 3, done.stderr
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    mv = a.registry.resolve("iris@1")
    assert f"the manifest of iris@1 ({mv.manifest_digest})" in line and str(remote.resolve()) in line
    assert "shipyard models push iris@1" in line
    assert stored(b) == before

    # the manifest pushed alone: its files are named, and still nothing is written
    open_named_remote_of(a).upload(a.store, [mv.manifest_digest])
    with pytest.raises(NotFoundError, match=r"of iris@1 \(sha256:[0-9a-f]{64}\) and \d+ more is not on remote") as exc:
        objects.pull(b.store, b.meta, mv, open_named_remote_of(b))
    assert len(str(exc.value).splitlines()) == 1
    assert stored(b) == before


def test_a_tampered_or_oversized_object_on_the_remote_is_refused(two: tuple[Services, Services, Path]) -> None:
    a, b, remote = two
    mv = a.registry.resolve("iris@1")
    objects.push(a.store, a.meta, mv, open_named_remote_of(a))
    model_file = next(e for e in objects.entries(load(a, mv), mv) if e.what.startswith("model"))
    path = remote_path(remote, model_file.digest)
    original = path.read_bytes()
    path.chmod(0o644)
    path.write_bytes(bytes([original[0] ^ 1]) + original[1:])  # same size, one bit flipped
    with pytest.raises(IntegrityError, match="expected"):
        objects.pull(b.store, b.meta, mv, open_named_remote_of(b))
    assert model_file.digest not in stored(b) and mv.manifest_digest not in stored(b)

    path.write_bytes(original + b"\0" * 4096)  # larger than the manifest says
    with pytest.raises(IntegrityError, match=f"at most {len(original)} are expected"):
        objects.pull(b.store, b.meta, mv, open_named_remote_of(b))
    assert mv.manifest_digest not in stored(b)

    path.write_bytes(original)
    manifest = remote_path(remote, mv.manifest_digest)
    good = manifest.read_bytes()
    manifest.chmod(0o644)
    manifest.write_bytes(good.replace(b'"mode":420', b'"mode":493', 1))
    with pytest.raises(IntegrityError, match=r"the manifest of iris@1 .* is corrupt"):
        objects.pull(b.store, b.meta, mv, open_named_remote_of(b))
    manifest.write_bytes(good)
    report = objects.pull(b.store, b.meta, mv, open_named_remote_of(b))  # the good copies back: it goes through
    assert report.transferred == report.objects


def load(svc: Services, mv: ModelVersion) -> Manifest:
    from shipyard.core.artifacts.tree import load_manifest

    return load_manifest(svc.store, mv.manifest_digest)


def test_load_model_on_b_falls_back_on_the_default_remote(two: tuple[Services, Services, Path],
                                                          tmp_path: Path) -> None:
    a, b, remote = two
    mv = a.registry.resolve("iris@production")
    objects.push(a.store, a.meta, mv, open_named_remote_of(a))
    assert b.registry.load("iris@production").predict([[1.0, 1.0]]).tolist() == [1]
    assert {o.digest for o in objects.entries(load(b, mv), mv)} <= stored(b)  # now local: no remote next time

    second = register(a, tmp_path, constant=2)  # registered on A, never pushed
    with pytest.raises(NotFoundError) as exc:
        b.registry.load(f"iris@{second.version}")
    message = str(exc.value)
    assert len(message.splitlines()) == 1
    assert str(second.manifest_digest) in message and str(remote.resolve()) in message
    assert "shipyard models push" in message


def test_reproduce_on_b_restores_the_runs_inputs_from_the_default_remote(two: tuple[Services, Services, Path],
                                                                          tmp_path: Path) -> None:
    a, b, remote = two
    data = a.store.put_bytes(b"x,y\n1,2\n")
    run = a.tracker.start_run(name="train")
    a.meta.add_inputs(run.id, {"data/train.csv": data})
    a.meta.set_tags(run.id, {"shipyard.cmd": "cat data/train.csv", "shipyard.stage": "train"})
    mv = register(a, tmp_path, run_id=run.id, constant=3)
    a.tracker.end_run(run.id)

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.raises(NotFoundError, match=re.escape(f"input data/train.csv of stage train cannot be restored: "
                                                      f"object {data} is in neither the local store nor remote "
                                                      f"{remote.resolve()}")):
        reproduce(b.meta, b.store, mv, scratch, LocalExecutor(), {})

    pushed = objects.push(a.store, a.meta, mv, open_named_remote_of(a))  # the run's inputs go with the version
    assert remote_path(remote, data).is_file() and not pushed.unavailable
    result = reproduce(b.meta, b.store, mv, scratch, LocalExecutor(), {})
    assert (scratch / "data" / "train.csv").read_bytes() == b"x,y\n1,2\n"
    assert result.stages == ["train"] and data in stored(b)


def test_pull_with_inputs_takes_a_folder_input_and_its_files(two: tuple[Services, Services, Path],
                                                             tmp_path: Path) -> None:
    """`models pull --inputs`: what reproduce restores, a folder input's files included (bounded by its
    manifest); without it only the version's own objects come. A push from a machine that lacks an input
    says so instead of failing: the version itself loads without it."""
    from shipyard.core.artifacts.tree import put_path

    a, b, remote = two
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a.csv").write_text("1\n")
    (tmp_path / "raw" / "b.csv").write_text("2\n")
    folder = put_path(a.store, tmp_path / "raw")
    run = a.tracker.start_run(name="train")
    a.meta.add_inputs(run.id, {"data/raw": folder.digest})
    mv = register(a, tmp_path, run_id=run.id, constant=4)
    a.tracker.end_run(run.id)
    files = {e.digest for e in folder.manifest or ()}
    assert len(files) == 2

    pushed = objects.push(a.store, a.meta, mv, open_named_remote_of(a))
    assert all(remote_path(remote, d).is_file() for d in {folder.digest, *files})
    plain = objects.pull(b.store, b.meta, mv, open_named_remote_of(b))
    assert folder.digest not in stored(b) and plain.objects < pushed.objects
    full = objects.pull(b.store, b.meta, mv, open_named_remote_of(b), inputs=True)
    assert {folder.digest, *files} <= stored(b) and full.transferred == 3 and full.objects == pushed.objects

    other = tmp_path / "remote2"
    other.mkdir()
    b.store.delete(folder.digest)  # B lacks the folder's manifest now, and remote2 has nothing
    partial = objects.push(b.store, b.meta, mv, FolderRemote(other))
    assert partial.unavailable == [f"input data/raw of run {run.id[:8]} (train)"]
    assert (other / object_key(mv.manifest_digest)).is_file()


@pytest.fixture
def s3(s3_endpoint: str) -> str:
    """An empty bucket on the session's moto server."""
    return make_bucket(s3_endpoint)


def test_push_and_pull_through_an_s3_remote(s3_endpoint: str, s3: str, tmp_path: Path) -> None:
    yaml = (f"remotes:\n  team:\n    url: s3://{s3}/models\n    endpoint_url: {s3_endpoint}\n"
            "default_remote: team\n")
    db = f"sqlite:///{tmp_path / 'team.db'}"
    a = build(machine(tmp_path / "A", db, yaml))
    b = build(machine(tmp_path / "B", db, yaml))
    try:
        mv = register(a, tmp_path)
        target = open_named_remote_of(a)
        pushed = objects.push(a.store, a.meta, mv, target)
        assert pushed.transferred == pushed.objects and pushed.bytes > 0
        assert objects.push(a.store, a.meta, mv, target).transferred == 0
        pulled = objects.pull(b.store, b.meta, mv, open_named_remote_of(b))
        assert pulled.transferred == pulled.objects == pushed.objects and pulled.bytes == pushed.bytes
        assert b.registry.load("iris@1").predict([[0.0, 0.0]]).tolist() == [1]
    finally:
        a.close()
        b.close()


def test_with_the_store_in_s3_b_needs_no_remote(s3_endpoint: str, s3: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """`data pull` fills B's cache and workspace from the store itself, reproduce restores a run's inputs from
    it, and `models push` says in one line that it is not needed."""
    from shipyard.core.workspace.add import add
    from shipyard.interfaces.cli import data as data_cli
    from shipyard.interfaces.cli import models_sync
    from shipyard.wiring import open_workspace

    db = f"sqlite:///{tmp_path / 'team.db'}"
    store = {"SHIPYARD_STORE": f"s3://{s3}/store", "AWS_ENDPOINT_URL": s3_endpoint}
    a_settings = machine(tmp_path / "A", db, "stages: {}\n", **store)
    b_settings = machine(tmp_path / "B", db, "stages: {}\n", **store)
    (a_settings.project_root / "data").mkdir()
    (a_settings.project_root / "data" / "train.csv").write_text("x,y\n1,2\n")
    (a_settings.project_root / "data" / "notes.txt").write_text("two files\n")
    added = add(open_workspace(a_settings), [a_settings.project_root / "data"])
    shutil.copy(a_settings.project_root / "shipyard.lock", b_settings.project_root / "shipyard.lock")  # git

    for key, value in {"SHIPYARD_HOME": str(b_settings.home), "SHIPYARD_DB_URL": db, **store}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(b_settings.project_root)
    data_cli.pull(remote=None, force=False, as_json=True)
    report = json.loads(capsys.readouterr().out)
    assert report["transferred"] == 3 and report["written"] == 2  # a manifest and two files
    assert (b_settings.project_root / "data" / "train.csv").read_text() == "x,y\n1,2\n"
    cached = {d.hex for d in (Digest.parse(p.parent.name + p.name) for p in
                              (b_settings.store_path / "sha256").glob("*/*"))}
    assert added[0][1].digest.hex in cached

    a = build(a_settings)
    run = a.tracker.start_run(name="train")
    a.meta.add_inputs(run.id, {"data": added[0][1].digest})
    a.meta.set_tags(run.id, {"shipyard.cmd": "cat data/train.csv", "shipyard.stage": "train"})
    mv = register(a, tmp_path, run_id=run.id)
    a.tracker.end_run(run.id)
    shutil.rmtree(b_settings.store_path)  # B's cache is empty: the inputs come from the store
    b = build(b_settings)
    try:
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        reproduce(b.meta, b.store, mv, scratch, LocalExecutor(), {})
        assert (scratch / "data" / "notes.txt").read_text() == "two files\n"
    finally:
        a.close()
        b.close()

    models_sync.push("iris@1", None, False)
    line = capsys.readouterr().out.strip()
    assert line == (f"the store is s3://{s3}/store: every machine reads it, so `models push` is not needed; "
                    "nothing was pushed")
    assert default_remote(b_settings.project_root) is None and os.environ["SHIPYARD_STORE"].startswith("s3://")
