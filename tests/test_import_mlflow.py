"""``shipyard import mlflow``: a store the real MLflow made (in its side venv) comes over whole, once.

The MLflow script runs once per machine and MLflow version (its stores are kept in the test cache and
copied per module, their files' times preserved): 3 experiments, 200 runs with step metrics, two
registered models with aliases and stages, one version whose files were overwritten after registration,
in a SQLite database (MLflow 3's default) and a small file store.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.core.artifacts.tree import load_manifest, read_verified
from shipyard.core.lineage.records import RunStatus
from shipyard.core.registry.trust import TrustSet
from shipyard.errors import InvalidInputError, UntrustedModelError
from shipyard.wiring import Services, from_environment
from shipyard.wiring.mlflow_import import import_mlflow
from tests.conftest import MLFLOW_VERSION, TEST_CACHE, cli_env, mlflow_venv, shipyard

MAKE_STORES = r'''
import json, os, sys, time, warnings
import numpy as np
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from sklearn.linear_model import LogisticRegression

warnings.simplefilter("ignore")
out = sys.argv[1]
X = np.arange(60, dtype=float).reshape(20, 3)
y = (X[:, 0] > 25).astype(int)
T0 = 1_700_000_000_000


def fill(c, runs, models):
    truth = {"runs": [], "models": {}}
    exps = [c.create_experiment(f"exp-{i}") for i in range(3)]
    for i in range(runs):
        r = c.create_run(exps[i % 3], start_time=T0 + i * 1000, run_name=f"run-{i}", tags={"team": f"t{i % 4}"})
        rid = r.info.run_id
        metrics = [Metric("loss", 1.0 / (s + 1 + i), T0 + i * 1000 + s, s) for s in range(5)]
        metrics.append(Metric("acc", 0.5 + i / 1000, T0 + i * 1000 + 7, 0))
        c.log_batch(rid, metrics=metrics, params=[Param("alpha", str(i / 10)), Param("l1", str(i % 7))],
                    tags=[RunTag("idx", str(i))])
        if i % 50 == 0:
            c.log_text(rid, f"notes of run {i}\n", "notes/readme.txt")
        c.set_terminated(rid, "FAILED" if i == 7 else "FINISHED", end_time=T0 + i * 1000 + 500)
        truth["runs"].append(rid)
    mlflow.set_experiment("exp-0")
    for name, fmt, C in models:
        with mlflow.start_run(run_name=f"train-{name}") as run:
            mlflow.log_param("C", C)
            model = LogisticRegression(C=C).fit(X, y)
            info = mlflow.sklearn.log_model(model, name="model", registered_model_name=name,
                                            serialization_format=fmt, pip_requirements=["scikit-learn"])
        truth["models"].setdefault(name, []).append({
            "run_id": run.info.run_id, "folder": c.get_logged_model(info.model_id).artifact_location,
            "predict": model.predict(X).tolist()})
    return truth


mlflow.set_tracking_uri(f"sqlite:///{out}/db/mlflow.db")
os.chdir(f"{out}/db")  # the artifact root: ./mlruns beside the database, as `mlflow server` makes it
c = MlflowClient()
truth = fill(c, 200, [("wine", "skops", 1.0), ("wine", "skops", 0.5), ("wine", "skops", 0.1),
                      ("iris", "cloudpickle", 2.0)])
c.set_registered_model_alias("wine", "champion", "2")
c.set_registered_model_alias("wine", "challenger", "3")
c.set_registered_model_alias("iris", "champion", "1")
c.transition_model_version_stage("wine", "1", "Production")
c.transition_model_version_stage("iris", "1", "Staging")
# loading a version by models:/ makes MLflow write registered_model_meta into its folder: not a change of the model
time.sleep(0.05)
mlflow.sklearn.load_model("models:/wine/2")
# possible in MLflow: a version names a folder, not bytes; wine/3's files change after its registration
folder = truth["models"]["wine"][2]["folder"].removeprefix("file://")
with open(os.path.join(folder, "requirements.txt"), "a") as f:
    f.write("# changed after registration\n")
json.dump(truth, open(f"{out}/db.json", "w"))

os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
mlflow.set_tracking_uri(f"file://{out}/files/mlruns")
small = fill(MlflowClient(), 6, [("files-model", "skops", 1.0)])
MlflowClient().set_registered_model_alias("files-model", "champion", "1")
# an ONNX model (MLflow's onnx flavor): Y = 2 * X
from onnx import TensorProto, helper
graph = helper.make_graph([helper.make_node("Mul", ["X", "two"], ["Y"])], "doubler",
                          [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 3])],
                          [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 3])],
                          [helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])])
onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
with mlflow.start_run(run_name="doubler") as run:
    mlflow.onnx.log_model(onnx_model, name="model", registered_model_name="doubler", pip_requirements=["onnx"])
small["models"]["doubler"] = [{"run_id": run.info.run_id}]
json.dump(small, open(f"{out}/files.json", "w"))
'''


def _made_stores() -> Path:
    """The stores MLflow made, kept in the test cache under the script's digest (made once per machine)."""
    key = hashlib.sha256(f"{MLFLOW_VERSION}\n{MAKE_STORES}".encode()).hexdigest()[:16]
    made = TEST_CACHE / "mlflow-stores" / key
    made.parent.mkdir(parents=True, exist_ok=True)
    with open(made.parent / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (made / "files.json").exists():
            shutil.rmtree(made, ignore_errors=True)
            (made / "db").mkdir(parents=True)
            (made / "files").mkdir()
            python = mlflow_venv() / "python"
            env = {**os.environ, "MLFLOW_TRACKING_URI": "", "PYTHONWARNINGS": "ignore"}
            done = subprocess.run([str(python), "-c", MAKE_STORES, str(made)], capture_output=True, text=True,
                                  timeout=600, env=env)
            if done.returncode:
                raise AssertionError(f"MLflow's script failed:\n{done.stderr[-3000:]}")
    return made


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("mlflow") / "stores"
    shutil.copytree(_made_stores(), copy, symlinks=True)  # copy2: modification times kept (the flag reads them)
    return copy


def _project(folder: Path) -> Services:
    folder.mkdir(parents=True, exist_ok=True)
    return from_environment({"SHIPYARD_HOME": str(folder / ".shipyard"), "SHIPYARD_ACTOR": "importer"}, folder,
                            anywhere=True)


@pytest.fixture(scope="module")
def imported(stores: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Services, object]]:
    svc = _project(tmp_path_factory.mktemp("project"))
    report = import_mlflow(svc, f"sqlite:///{stores / 'db' / 'mlflow.db'}")
    yield svc, report
    svc.close()


def test_every_run_comes_over_with_its_values(stores: Path, imported: tuple[Services, object]) -> None:
    svc, report = imported
    truth = json.loads((stores / "db.json").read_text())
    d = report.to_dict()  # type: ignore[attr-defined]
    assert d["added"]["runs"] == 204 and d["added"]["experiments"] == 3
    assert d["added"]["metrics"] == 200 * 6 and d["added"]["params"] == 200 * 2 + 4
    for i, rid in enumerate(truth["runs"]):
        run = svc.meta.get_run(rid)  # MLflow's own run id
        assert (run.name, run.experiment) == (f"run-{i}", f"exp-{i % 3}") and run.user
        assert run.status is (RunStatus.FAILED if i == 7 else RunStatus.FINISHED)
        assert (run.start_time, run.end_time) == ((1_700_000_000_000 + i * 1000) / 1000,
                                                 (1_700_000_000_000 + i * 1000 + 500) / 1000)
        assert run.params == {"alpha": str(i / 10), "l1": str(i % 7)}
        assert run.tags["team"] == f"t{i % 4}" and run.tags["idx"] == str(i)
        assert run.tags["mlflow.run_id"] == rid and run.tags["mlflow.runName"] == f"run-{i}"
        assert run.metrics == {"loss": 1.0 / (5 + i), "acc": 0.5 + i / 1000}
        if i % 40 == 0:  # every step and time of a metric's history
            history = svc.meta.metric_history(rid, "loss")
            assert [(m.step, m.value, m.timestamp) for m in history] == [
                (s, 1.0 / (s + 1 + i), (1_700_000_000_000 + i * 1000 + s) / 1000) for s in range(5)]
        if i % 50 == 0:
            (notes,) = [a for a in run.artifacts if a.path == "notes"]
            entries = load_manifest(svc.store, notes.digest).entries
            assert [(e.path, read_verified(svc.store, e.digest)) for e in entries] == [
                ("readme.txt", f"notes of run {i}\n".encode())]
        else:
            assert not run.artifacts


def test_versions_aliases_and_the_overwritten_version(stores: Path, imported: tuple[Services, object]) -> None:
    svc, report = imported
    truth = json.loads((stores / "db.json").read_text())["models"]
    d = report.to_dict()  # type: ignore[attr-defined]
    wine = svc.meta.list_versions("wine")
    assert [(v.version, v.run_id) for v in wine] == [(n + 1, m["run_id"]) for n, m in enumerate(truth["wine"])]
    (iris,) = svc.meta.list_versions("iris")
    assert iris.run_id == truth["iris"][0]["run_id"] and iris.flavor == "sklearn"
    # the training run carries the logged model's files, as `runs:/ID/model` names them in MLflow
    run = svc.meta.get_run(truth["wine"][0]["run_id"])
    assert [a.path for a in run.artifacts] == ["model"]
    # every file's bytes are MLflow's (plus Shipyard's description of the folder)
    for n, m in enumerate(truth["wine"]):
        files = {e.path: read_verified(svc.store, e.digest) for e in load_manifest(svc.store, wine[n].manifest_digest)}
        folder = Path(stores / "db" / "mlruns", *Path(m["folder"]).parts[-4:])
        assert {p: b for p, b in files.items() if p != "shipyard-model.json"} == {
            f.name: f.read_bytes() for f in folder.iterdir()}
    models = {s.name: s.aliases for s in svc.meta.list_models()}
    # wine/3 changed after registration: flagged, and its alias (challenger) is not carried
    assert models == {"wine": {"champion": 2, "production": 1}, "iris": {"champion": 1, "staging": 1}}
    assert len(d["flagged"]) == 1 and d["flagged"][0].startswith("wine@3 (MLflow wine/3): requirements.txt")
    # wine/2 was loaded by models:/ in MLflow, which rewrote its registered_model_meta last: not flagged for that
    two = Path(stores / "db" / "mlruns", *Path(truth["wine"][1]["folder"]).parts[-4:])
    assert max(two.iterdir(), key=lambda f: f.stat().st_mtime).name == "registered_model_meta"
    assert "FLAGGED" in wine[2].description and "FLAGGED" not in wine[1].description
    assert any(n["what"] == "alias wine@challenger" for n in d["not_carried"])
    assert d["stage_aliases"] == ["iris: stage Staging -> alias staging", "wine: stage Production -> alias production"]
    # a skops model loads (Shipyard's allowlist), predicting what MLflow's did; the pickle waits for trust
    assert svc.registry.load("wine@champion").predict(_x()).tolist() == truth["wine"][1]["predict"]
    assert d["trust_needed"] == ["iris@1"]
    with pytest.raises(UntrustedModelError, match="models trust iris@1 --pickle"):
        svc.registry.load("iris@1")
    svc.registry.trust("iris@1", TrustSet(pickle=True), "reviewed: our own MLflow training run")
    assert svc.registry.load("iris@staging").predict(_x()).tolist() == truth["iris"][0]["predict"]


def _x() -> object:
    import numpy as np

    return np.arange(60, dtype=float).reshape(20, 3)


def test_a_second_import_adds_nothing(stores: Path, imported: tuple[Services, object]) -> None:
    svc, _ = imported
    again = import_mlflow(svc, f"sqlite:///{stores / 'db' / 'mlflow.db'}").to_dict()
    assert set(again["added"].values()) == {0}
    assert again["skipped"] == {"runs": 204, "versions": 4, "aliases": 4}
    assert len(svc.meta.list_versions("wine")) == 3


def test_bad_input_is_one_line_and_changes_nothing(stores: Path, tmp_path: Path) -> None:
    svc = _project(tmp_path / "p")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE runs (x)")
    bad = tmp_path / "bad"
    shutil.copytree(stores / "db", bad, symlinks=True)
    db = bad / "mlflow.db"
    for uri, message in ((str(tmp_path / "nowhere"), "does not exist"),
                         (f"sqlite:///{other}", "is not an MLflow database: it has no experiments")):
        with pytest.raises(InvalidInputError, match=message):
            import_mlflow(svc, uri)
    # a location with '..' in the database
    with sqlite3.connect(db) as conn:
        first = conn.execute("SELECT run_uuid, artifact_uri FROM runs ORDER BY start_time LIMIT 1").fetchone()
        conn.execute("UPDATE runs SET artifact_uri = ? WHERE run_uuid = ?", (f"{bad}/mlruns/../../../etc", first[0]))
    with pytest.raises(InvalidInputError, match=r"holds '\.\.'; nothing was imported"):
        import_mlflow(svc, f"sqlite:///{db}")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET artifact_uri = ? WHERE run_uuid = ?", first[::-1])
    # a link out of the artifact root inside a run's artifacts
    notes = next((bad / "mlruns").glob("*/*/artifacts/notes"))
    (notes / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(InvalidInputError, match="link out of the artifact root"):
        import_mlflow(svc, f"sqlite:///{db}")
    assert svc.meta.search_runs([], 10, None) == [] and svc.meta.list_models() == []
    assert not list(svc.store.iter_objects())
    svc.close()
    done = shipyard("import", "mlflow", str(tmp_path / "nowhere"), env=cli_env(), cwd=tmp_path, check=False)
    assert done.returncode != 0 and done.stderr.count("\n") == 1 and "does not exist" in done.stderr
    assert not (tmp_path / ".shipyard").exists()


def test_a_file_store_through_the_cli(stores: Path, tmp_path: Path) -> None:
    truth = json.loads((stores / "files.json").read_text())
    uri = f"file://{stores / 'files' / 'mlruns'}"
    said = json.loads(shipyard("import", "mlflow", uri, "--dry-run", "--json", env=cli_env(), cwd=tmp_path).stdout)
    assert said["added"]["runs"] == 8 and not list(tmp_path.iterdir())  # a dry run made no .shipyard/ here
    done = shipyard("import", "mlflow", uri, "--json", env=cli_env(), cwd=tmp_path)
    body = json.loads(done.stdout)
    tags = body["added"].pop("tags")  # 5 a run made by the client (3 its own, 2 of lineage), more for log_model's
    assert body["added"] == {"experiments": 3, "runs": 8, "params": 13, "metrics": 36, "artifacts": 3,
                             "versions": 2, "aliases": 1} and tags > 6 * 5
    svc = _project(tmp_path)
    try:
        run = svc.meta.get_run(truth["runs"][5])
        assert run.params == {"alpha": "0.5", "l1": "5"} and run.experiment == "exp-2"
        assert [m.value for m in svc.meta.metric_history(run.id, "loss")] == [1.0 / (s + 6) for s in range(5)]
        assert svc.registry.resolve("files-model@champion").run_id == truth["models"]["files-model"][0]["run_id"]
        # MLflow's onnx flavor: a version of Shipyard's (an ONNX graph carries no code: no trust asked)
        doubler = svc.registry.resolve("doubler@1")
        assert (doubler.flavor, doubler.run_id) == ("onnx", truth["models"]["doubler"][0]["run_id"])
        assert svc.registry.load("doubler@1").run(None, {"X": _x().astype("float32")})[0].tolist() == (
            2 * _x()).tolist()  # type: ignore[operator]
        assert "doubler@1" not in body["trust_needed"]
    finally:
        svc.close()


def test_a_dry_run_says_what_an_import_adds_and_writes_nothing(stores: Path, tmp_path: Path,
                                                                imported: tuple[Services, object]) -> None:
    svc = _project(tmp_path)
    try:
        said = import_mlflow(svc, f"sqlite:///{stores / 'db' / 'mlflow.db'}", dry_run=True).to_dict()
        done = imported[1].to_dict()  # type: ignore[attr-defined]
        assert said["added"] == done["added"] and [v["ref"] for v in said["versions"]] == [
            v["ref"] for v in done["versions"]]
        assert svc.meta.search_runs([], 10, None) == [] and svc.meta.list_models() == []
        assert not list(svc.store.iter_objects())
    finally:
        svc.close()


def test_artifact_locations_map_into_the_root_or_say_why_not(tmp_path: Path) -> None:
    from shipyard.adapters.mlflow_store.locations import ArtifactRoot

    (tmp_path / "root" / "7" / "abc" / "artifacts").mkdir(parents=True)
    where = ArtifactRoot(tmp_path / "root", tmp_path)
    here = (tmp_path / "root" / "7" / "abc" / "artifacts").resolve()
    # moved with the store (another machine's path), served by `mlflow server`, or relative to the database
    for uri in ("/elsewhere/mlruns/7/abc/artifacts", "mlflow-artifacts:/7/abc/artifacts", "root/7/abc/artifacts",
                f"file://{here}"):
        assert where.locate(uri, "7").folder == here, uri
    s3 = where.locate("s3://bucket/7/abc/artifacts", "7")
    assert s3.folder is None and not s3.escape and "not carried over" in s3.why
    assert where.locate(f"{tmp_path}/root/../../etc", "7").escape
    assert where.locate("/never/logged/7/zzz/artifacts", "7") == type(s3)(None)  # nothing logged: nothing to say


@pytest.mark.postgres
def test_mlflow_on_postgresql(stores: Path, imported: tuple[Services, object], tmp_path: Path) -> None:
    """MLflow's tables on PostgreSQL (copied from its SQLite database, rows and types as MLflow made them),
    with the artifact root given by --artifacts: the same import as from SQLite."""
    import uuid

    import sqlalchemy as sa

    from tests.conftest import PG_URL, _pg_admin

    if not PG_URL:
        pytest.skip("SHIPYARD_TEST_PG_URL is not set (.ci/run starts PostgreSQL and sets it)")
    name, ours = f"mlflow_{uuid.uuid4().hex[:12]}", f"shipyard_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(f'CREATE DATABASE "{ours}"')
    url = f"{PG_URL.rpartition('/')[0]}/{name}"
    try:
        lite = sa.create_engine(f"sqlite:///{stores / 'db' / 'mlflow.db'}")
        tables = ["experiments", "experiment_tags", "runs", "params", "metrics", "tags", "registered_models",
                  "model_versions", "registered_model_aliases", "logged_models"]
        meta = sa.MetaData()
        meta.reflect(lite, only=tables)
        for table in meta.tables.values():
            table.constraints = {c for c in table.constraints if isinstance(c, sa.PrimaryKeyConstraint)}
            table.foreign_keys.clear()
        pg = sa.create_engine(url)
        meta.create_all(pg)
        with lite.connect() as src, pg.begin() as dst:
            for table in tables:
                rows = [dict(r._mapping) for r in src.execute(meta.tables[table].select())]
                if rows:
                    dst.execute(meta.tables[table].insert(), rows)
        pg.dispose()
        # into a project whose own metadata is on PostgreSQL too (the import's bulk writes on that backend)
        svc = from_environment({"SHIPYARD_HOME": str(tmp_path / ".shipyard"), "SHIPYARD_ACTOR": "importer",
                                "SHIPYARD_DB_URL": f"{PG_URL.rpartition('/')[0]}/{ours}"}, tmp_path, anywhere=True)
        try:
            got = import_mlflow(svc, url.replace("+psycopg", ""), artifacts=stores / "db" / "mlruns").to_dict()
            want = imported[1].to_dict()  # type: ignore[attr-defined]
            assert got["added"] == want["added"] and got["flagged"] == want["flagged"]
            rid = json.loads((stores / "db.json").read_text())["runs"][40]
            assert [m.value for m in svc.meta.metric_history(rid, "loss")] == [1.0 / (s + 41) for s in range(5)]
        finally:
            svc.close()
    finally:
        with _pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'DROP DATABASE IF EXISTS "{ours}" WITH (FORCE)')


def test_a_protected_alias_moves_only_as_the_policy_allows(stores: Path, tmp_path: Path) -> None:
    """MLflow's Production stage is no way around the project's policy: production is a protected alias."""
    from shipyard.wiring.policy import init_bundle

    (tmp_path / "shipyard.yaml").write_text("version: 1\n")
    init_bundle(tmp_path)
    svc = from_environment({"SHIPYARD_ACTOR": "importer"}, tmp_path)
    try:
        report = import_mlflow(svc, f"sqlite:///{stores / 'db' / 'mlflow.db'}").to_dict()
        assert {s.name: s.aliases for s in svc.meta.list_models()}["wine"] == {"champion": 2}
        (why,) = [n["why"] for n in report["not_carried"] if n["what"] == "alias wine@production"]
        assert why.startswith("refused by the project's policy (`shipyard alias set wine production 1` once")
    finally:
        svc.close()


def test_recording_into_mlflows_database_is_refused_with_the_import_and_changes_no_byte(stores: Path,
                                                                                          tmp_path: Path) -> None:
    """An MLflow script's ``set_tracking_uri("sqlite:///mlflow.db")`` in a project that has MLflow's database: one
    line naming the import, and MLflow's file as it was (not even switched to WAL)."""
    import shipyard as api
    from shipyard.errors import BackendUnavailableError

    (tmp_path / "ml").mkdir()
    db = tmp_path / "ml" / "mlflow.db"
    shutil.copy2(stores / "db" / "mlflow.db", db)
    before = db.read_bytes()
    with pytest.raises(BackendUnavailableError, match=r"is an MLflow tracking database; .* `shipyard import mlflow "):
        api.Client(tracking_uri=f"sqlite:///{db}").start_run()
    env = {**cli_env(), "SHIPYARD_HOME": str(tmp_path / ".shipyard"), "SHIPYARD_DB_URL": f"sqlite:///{db}"}
    done = shipyard("runs", "list", env=env, cwd=tmp_path, check=False)
    assert done.returncode == 6 and done.stderr.count("\n") == 1 and "shipyard import mlflow" in done.stderr
    assert db.read_bytes() == before and [p.name for p in db.parent.iterdir()] == ["mlflow.db"]


def test_two_imports_at_once_add_each_run_and_version_once(stores: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Invariant 8: the second import waits for the first, then reads what it added (it used to register
    every version again, and to fail on a run the first had just written)."""
    import threading

    from shipyard.wiring import mlflow_models

    store = tmp_path / "mlruns"
    shutil.copytree(stores / "files" / "mlruns", store, symlinks=True)
    home = tmp_path / "p"
    _project(home).close()
    inside, go = threading.Event(), threading.Event()
    real = mlflow_models.ModelImport._version

    def held(self: mlflow_models.ModelImport, v: object) -> object:
        if threading.current_thread().name == "first":  # runs written, versions not yet: the second starts now
            inside.set()
            go.wait(30)
        return real(self, v)  # type: ignore[arg-type]

    monkeypatch.setattr(mlflow_models.ModelImport, "_version", held)
    reports: dict[str, dict[str, object]] = {}

    def one() -> None:
        svc = _project(home)
        try:
            reports[threading.current_thread().name] = import_mlflow(svc, str(store)).to_dict()
        finally:
            svc.close()

    first = threading.Thread(target=one, name="first")
    first.start()
    assert inside.wait(60)
    second = threading.Thread(target=one, name="second")
    second.start()
    second.join(1.5)  # it waits on the import lock (it used to finish here, with its own copies)
    go.set()
    first.join(60)
    second.join(60)
    assert set(reports) == {"first", "second"}
    added = [reports[n]["added"] for n in ("first", "second")]
    assert added[0]["runs"] >= 7 and added[0]["versions"] >= 1  # type: ignore[index,operator]
    assert added[1]["runs"] == 0 and added[1]["versions"] == 0  # type: ignore[index]
    svc = _project(home)
    try:
        models = svc.meta.list_models()
        assert models and all([mv.version for mv in svc.meta.list_versions(m.name)] == [1] for m in models)
    finally:
        svc.close()


def test_a_crafted_file_store_is_reported_part_by_part(stores: Path, tmp_path: Path) -> None:
    """Each crafted part is left out and named once, in bounded time and memory: a FIFO (it used to block the
    import forever), times no datetime holds (a traceback), a million bad metric lines (a report entry each),
    a copied run folder (a database error), a version deleted in MLflow (imported as live)."""
    store = tmp_path / "mlruns"
    shutil.copytree(stores / "files" / "mlruns", store, symlinks=True)
    run = sorted(store.glob("*/*/metrics"))[0].parent
    total = len(list(store.glob("*/*/metrics")))  # runs in the store as MLflow made it
    (store / "999").mkdir()
    os.mkfifo(store / "999" / "meta.yaml")
    with open(run / "metrics" / "loss", "a") as f:
        f.write(f"1{'0' * 400} 1.0 0\n-5 1.0 1\n" + "x\n" * 1_000_000)
    meta = run / "meta.yaml"
    meta.write_text(meta.read_text().replace("start_time:", f"start_time: 1{'0' * 400}\nold_start:"))
    twin = run.parent / run.name.upper()
    shutil.copytree(run, twin)
    (twin / "meta.yaml").write_text(meta.read_text().replace(run.name, twin.name))
    other = next(p.parent for p in sorted(store.glob("*/*/metrics")) if p.parent not in (run, twin))
    deep = other / "artifacts" / "deep"  # folders nested past PATH_MAX (a traceback from the scan)
    deep.mkdir(parents=True)
    fd = os.open(deep, os.O_RDONLY)
    try:
        for _ in range(25):  # 25 x 201 characters: past PATH_MAX (4096)
            os.mkdir("d" * 200, dir_fd=fd)
            fd, old = os.open("d" * 200, os.O_RDONLY, dir_fd=fd), fd
            os.close(old)
    finally:
        os.close(fd)
    version = store / "models" / "files-model" / "version-1" / "meta.yaml"
    version.write_text(version.read_text().replace("current_stage: None", "current_stage: Deleted_Internal"))
    bomb = next(p.parent for p in sorted(store.glob("*/*/metrics")) if p.parent not in (run, twin, other))
    with open(bomb / "meta.yaml", "a") as f:  # an alias bomb: refused by the loader, and named (it was dropped)
        f.write("a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
            f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdef", "bcdefg", strict=True)))
    done = shipyard("import", "mlflow", str(store), "--json", env=cli_env(), cwd=tmp_path)
    body = json.loads(done.stdout)
    assert body["added"]["runs"] == total - 1  # the alias bomb's run left out (and the copy)
    assert not [v for v in body["versions"] if str(v["mlflow"]).startswith("files-model/")]
    why = {w["what"]: w["why"] for w in body["not_carried"]}
    assert "its meta.yaml is not read: " in why[f"run folder {bomb.parent.name}/{bomb.name}"]
    assert len(why) < 20
    assert why["MLflow files-model/1"] == "deleted in MLflow: not imported"
    names = (run.name, twin.name)  # one of the two is imported (with its start time left out), the other named
    assert sum(w.startswith(tuple(f"run {n} start time" for n in names)) for w in why) == 1
    assert sum(w.startswith(tuple(f"run {n} (experiment" for n in names)) and "same run id" in y
               for w, y in why.items()) == 1
    bad = [w for w in why if "metric 'loss'" in w]
    assert len(bad) == 1 and "1000002 line(s)" in bad[0]
    assert any(w.endswith(" artifact deep") and "cannot be stored" in y for w, y in why.items())


def test_a_version_whose_files_cannot_be_stored_is_reported(stores: Path, tmp_path: Path) -> None:
    """A FIFO among a version's files: the version is left out and named (the import used to stop with a
    traceback, after its runs were written)."""
    store = tmp_path / "mlruns"
    shutil.copytree(stores / "files" / "mlruns", store, symlinks=True)
    meta = (store / "models" / "files-model" / "version-1" / "meta.yaml").read_text()
    location = next(line.split(": ", 1)[1] for line in meta.splitlines() if line.startswith("storage_location:"))
    os.mkfifo(store / location.split("/mlruns/", 1)[1] / "extra")
    done = shipyard("import", "mlflow", str(store), "--json", env=cli_env(), cwd=tmp_path)
    body = json.loads(done.stdout)
    assert not [v for v in body["versions"] if str(v["mlflow"]).startswith("files-model/")]
    assert not [r for r in body["trust_needed"] if r.startswith("files-model@")]
    why = {w["what"]: w["why"] for w in body["not_carried"]}
    assert why["MLflow files-model/1"].startswith("its files cannot be stored:") and "FIFO" in why[
        "MLflow files-model/1"]


def test_a_model_made_again_in_mlflow_is_a_new_version_not_the_old_one(stores: Path, tmp_path: Path) -> None:
    """MLflow numbers a deleted-and-recreated model's versions from 1 again: the new files/1 is another version
    (another creation time), imported as one; it used to count as "already imported" (the old files stayed
    what files-model@1 and its alias named, silently)."""
    store = tmp_path / "mlruns"
    shutil.copytree(stores / "files" / "mlruns", store, symlinks=True)
    home = tmp_path / "p"
    svc = _project(home)
    try:
        import_mlflow(svc, str(store))
        meta = store / "models" / "files-model" / "version-1" / "meta.yaml"
        text = meta.read_text()
        created = next(line for line in text.splitlines() if line.startswith("creation_timestamp:"))
        meta.write_text(text.replace(created, f"creation_timestamp: {int(created.split()[1]) + 5000}"))
        again = import_mlflow(svc, str(store)).to_dict()
        assert again["added"]["versions"] == 1 and [v["ref"] for v in again["versions"]] == ["files-model@2"]
        why = {w["what"]: w["why"] for w in again["not_carried"]}  # type: ignore[union-attr]
        assert why["MLflow files-model/1"].startswith("not the version imported before as files-model@1")
        assert "already names files-model@1 here" in why["alias files-model@champion"]
        assert import_mlflow(svc, str(store)).to_dict()["added"]["versions"] == 0  # and then it is imported
    finally:
        svc.close()


def test_an_unreachable_database_is_unavailable_and_its_password_never_shown(tmp_path: Path) -> None:
    """A server that is not there is BackendUnavailableError (it said "not an MLflow database"), and a password
    given as libpq's ?password= is masked like one in the user part (it was printed)."""
    pytest.importorskip("psycopg")
    from shipyard.errors import BackendUnavailableError

    svc = _project(tmp_path / "p")
    try:
        for url in ("postgresql://bob:s3cr3t@127.0.0.1:1/db", "postgresql://127.0.0.1:1/db?user=bob&password=s3cr3t"):
            with pytest.raises(BackendUnavailableError, match=r"cannot read postgresql://.*\*\*\*") as caught:
                import_mlflow(svc, url)
            assert "s3cr3t" not in str(caught.value)
    finally:
        svc.close()


def test_runs_uri_of_an_imported_model_names_its_version(stores: Path, imported: tuple[Services, object]) -> None:
    """``runs:/RUN_ID/model`` (MLflow's habit) names the version imported from that run's model; it said "not
    registered: register it" (the version's manifest adds shipyard-model.json to the run's folder)."""
    svc, _ = imported
    truth = json.loads((stores / "db.json").read_text())
    for name, made in truth["models"].items():
        for entry in made:
            mv = svc.registry.resolve(f"runs:/{entry['run_id']}/model")
            assert (mv.model, mv.run_id) == (name, entry["run_id"])


def test_a_database_file_name_with_percent_or_hash_is_that_file(stores: Path, tmp_path: Path) -> None:
    """``my%41.db`` is read, not ``myA.db`` beside it (the path went into a URL that SQLAlchemy and SQLite
    each percent-decoded), and ``h#ash.db`` opens (it was cut at '#'); still read-only."""
    shutil.copy2(stores / "db" / "mlflow.db", tmp_path / "my%41.db")
    shutil.copy2(stores / "db" / "mlflow.db", tmp_path / "h#ash.db")
    with sqlite3.connect(tmp_path / "myA.db") as conn:
        conn.execute("CREATE TABLE runs (x)")  # not MLflow's
    svc = _project(tmp_path / "p")
    try:
        for name in ("my%41.db", "h#ash.db"):
            said = import_mlflow(svc, str(tmp_path / name), artifacts=stores / "db" / "mlruns", dry_run=True)
            assert said.added["runs"] == 204, name
    finally:
        svc.close()


def test_the_report_names_the_trust_each_version_needs(imported: tuple[Services, object]) -> None:
    """A cloudpickle version needs --pickle; a skops one within the allowlist needs nothing (the CLI printed
    `--pickle` for every version that needed trust, skops types included)."""
    _, report = imported
    versions = report.to_dict()["versions"]  # type: ignore[attr-defined]
    assert {v["mlflow"].split("/")[0]: v.get("trust") for v in versions if not v["mlflow"].startswith("wine/")} \
        .get("iris") == "--pickle"
    assert all("trust" not in v for v in versions if v["mlflow"].startswith("wine/"))
