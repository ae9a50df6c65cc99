"""Experiments across commits: ``exp show`` joins the stage runs of each ``shipyard run``; ``metrics diff`` and
``params diff`` compare commits, the workspace, runs and model versions; files at a revision are read from git
or through that commit's ``shipyard.lock`` and the store, as untrusted input.

One real git repository for the module: a 2-stage pipeline (prepare -> train) run at one commit, a param
changed and run again, then committed. Commands run in-process through Typer's runner; one subprocess checks
the CLI's one-line error.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from shipyard.errors import ConfigError, IntegrityError, InvalidInputError, NotFoundError
from shipyard.interfaces.cli.app import app
from tests.conftest import cli_env

PY = sys.executable
CONFIG = f"""\
version: 1
params: params.yaml
stages:
  prepare:
    cmd: {PY} prep.py
    deps: [prep.py]
    params: [prepare.n]
    outs: [data]
  train:
    cmd: {PY} train.py
    deps: [train.py, data]
    params: [train.lr]
    outs: [model.txt]
    metrics: [metrics.json]
"""
PREP = """\
import os, yaml
p = yaml.safe_load(open("params.yaml"))
os.makedirs("data", exist_ok=True)
open("data/rows.txt", "w").write(" ".join(str(i) for i in range(p["prepare"]["n"])))
"""
TRAIN = """\
import json, yaml
p = yaml.safe_load(open("params.yaml"))
n = len(open("data/rows.txt").read().split())
open("model.txt", "w").write(str(p["train"]["lr"] * n))
json.dump({"acc": round(0.5 + p["train"]["lr"] * n / 10, 6), "loss": {"train": round(1 - p["train"]["lr"], 6)}},
          open("metrics.json", "w"))
"""
SHIPYARD_VARS = ("SHIPYARD_HOME", "SHIPYARD_DB_URL", "SHIPYARD_STORE", "SHIPYARD_RUN_ID", "SHIPYARD_ACTOR",
                 "SHIPYARD_STORE_CACHE")


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout.strip()


def git_repo(root: Path) -> None:
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "t@example.com")
    git(root, "config", "user.name", "t")
    git(root, "config", "commit.gpgsign", "false")


def cli(*args: str) -> Any:
    """``shipyard ARGS`` in-process; the result (its exception when it raised)."""
    return CliRunner().invoke(app, list(args), catch_exceptions=True)


def ok(*args: str) -> str:
    result = cli(*args)
    assert result.exit_code == 0, f"shipyard {' '.join(args)}: {result.exception!r}\n{result.output}"
    return str(result.output)


def as_json(*args: str) -> Any:
    return json.loads(ok(*args, "--json"))


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("exp") / "proj"
    git_repo(root)
    (root / "shipyard.yaml").write_text(CONFIG)
    (root / "params.yaml").write_text("prepare:\n  n: 3\ntrain:\n  lr: 0.1\n")
    (root / "prep.py").write_text(PREP)
    (root / "train.py").write_text(TRAIN)
    with pytest.MonkeyPatch.context() as mp:
        for key in SHIPYARD_VARS:
            mp.delenv(key, raising=False)
        mp.setenv("SHIPYARD_ACTOR", "tester@ci")
        mp.chdir(root)
        git(root, "add", "-A")
        git(root, "commit", "-qm", "code")
        ok("run")
        git(root, "add", "-A")  # the lock; the outputs are in .gitignore
        git(root, "commit", "-qm", "first results")
        (root / "params.yaml").write_text("prepare:\n  n: 3\ntrain:\n  lr: 0.2\n")
        ok("run")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "lr 0.2")
        yield root


def test_exp_show_joins_the_stage_runs_of_each_pipeline_run(proj: Path) -> None:
    rows = as_json("exp", "show")
    assert len(rows) == 2
    new, old = rows
    assert old["params"] == {"prepare.n": "3", "train.lr": "0.1"}
    assert old["metrics"] == {"acc": 0.53, "loss.train": 0.9}
    assert set(old["stages"]) == {"prepare", "train"} and old["reused"] == []
    # the second run only ran train: prepare was up to date, and its run's params are in the row
    assert new["params"] == {"prepare.n": "3", "train.lr": "0.2"}
    assert new["metrics"] == {"acc": 0.56, "loss.train": 0.8}
    assert new["reused"] == ["prepare"] and new["stages"]["prepare"] == old["stages"]["prepare"]
    assert old["commit"] == git(proj, "rev-parse", "HEAD~2") and not old["dirty"]
    assert new["commit"] == git(proj, "rev-parse", "HEAD~1") and new["dirty"]  # params.yaml was edited
    assert {r["status"] for r in rows} == {"finished"}
    runs = {r["id"]: r for r in as_json("runs", "list")}
    assert runs[new["stages"]["train"]]["tags"]["shipyard.pipeline_run"] == new["id"]
    assert json.loads(runs[new["stages"]["train"]]["tags"]["shipyard.pipeline_uses"]) == {
        "prepare": old["stages"]["prepare"]}


def test_exp_show_filters_sorts_and_prints_csv_and_a_table(proj: Path) -> None:
    assert [r["params"]["train.lr"] for r in as_json("exp", "show", "--where", "metrics.acc > 0.55")] == ["0.2"]
    assert [r["params"]["train.lr"] for r in as_json("exp", "show", "--where", "params.train.lr = '0.1'")] == ["0.1"]
    assert [r["metrics"]["acc"] for r in as_json("exp", "show", "--order-by", "metrics.acc asc")] == [0.53, 0.56]
    assert [r["params"]["train.lr"] for r in as_json("exp", "show", "--order-by", "params.train.lr")] == ["0.2", "0.1"]
    assert len(as_json("exp", "show", "--limit", "1")) == 1
    lines = ok("exp", "show", "--csv").splitlines()
    assert lines[0] == "id,commit,dirty,time,status,params.prepare.n,params.train.lr,metrics.acc,metrics.loss.train"
    assert len(lines) == 3 and lines[1].endswith(",3,0.2,0.56,0.8")
    table = ok("exp", "show")
    assert "train.lr" in table and "0.56" in table and git(proj, "rev-parse", "HEAD~1")[:8] in table
    bad = cli("exp", "show", "--where", "accuracy > 1")
    assert isinstance(bad.exception, InvalidInputError) and "unknown field 'accuracy'" in str(bad.exception)
    bad = cli("exp", "show", "--order-by", "bogus")
    assert isinstance(bad.exception, InvalidInputError) and "cannot order by 'bogus'" in str(bad.exception)


def test_metrics_diff_between_commits_reads_outputs_through_the_lock(proj: Path) -> None:
    # metrics.json is a stage output (git ignores it): each commit's shipyard.lock names its digest in the store
    assert "metrics.json" in (proj / ".gitignore").read_text()
    body = as_json("metrics", "diff", "HEAD~1", "HEAD")
    assert body["old"].startswith("HEAD~1 (") and body["new"].startswith("HEAD (")
    changes = {c["key"]: c for c in body["changes"]}
    assert set(changes) == {"acc", "loss.train"}
    assert changes["acc"]["path"] == "metrics.json"
    assert (changes["acc"]["old"], changes["acc"]["new"]) == (0.53, 0.56)
    assert (changes["acc"]["change"], changes["loss.train"]["change"]) == (0.03, -0.1)  # rounded as shown
    assert as_json("metrics", "diff", "HEAD", "HEAD")["changes"] == []
    table = ok("metrics", "diff", "HEAD~1", "HEAD")
    assert "+0.03" in table and "-0.1" in table
    md = ok("metrics", "diff", "HEAD~1", "HEAD", "--md").splitlines()
    assert md[0].startswith("| path | metric | HEAD~1 (") and md[1] == "|---|---|---|---|---|"
    assert "| metrics.json | acc | 0.53 | 0.56 | +0.03 |" in md


def test_workspace_against_head_by_default(proj: Path) -> None:
    metrics = proj / "metrics.json"
    saved = metrics.read_bytes()
    try:
        metrics.write_text(json.dumps({"acc": 0.6, "loss": {"train": 0.8}, "f1": 0.4}))
        body = as_json("metrics", "diff")
        assert body["old"].startswith("HEAD (") and body["new"] == "workspace"
        changes = {c["key"]: c for c in body["changes"]}
        assert set(changes) == {"acc", "f1"}  # loss.train is unchanged
        assert changes["acc"]["change"] == pytest.approx(0.04)
        assert (changes["f1"]["old"], changes["f1"]["new"], changes["f1"]["change"]) == (None, 0.4, None)
        assert "added" in ok("metrics", "diff")
        shown = {c["key"]: c for c in as_json("metrics", "diff", "--all")["changes"]}
        assert shown["loss.train"]["change"] == 0
        one = {c["key"] for c in as_json("metrics", "diff", "HEAD~1")["changes"]}  # one argument: it vs the workspace
        assert one == {"acc", "loss.train", "f1"}
        metrics.write_bytes(b'{"acc": 1, "pad": "' + b"x" * (9 * 1024 * 1024) + b'"}')  # a huge file: refused
        huge = cli("metrics", "diff")
        assert isinstance(huge.exception, InvalidInputError)
        assert str(huge.exception).startswith("metrics.json at workspace is 9437") and "more than the 8388608" in str(
            huge.exception)
    finally:
        metrics.write_bytes(saved)
    assert "no metrics changed between HEAD" in ok("metrics", "diff")


def test_params_diff(proj: Path) -> None:
    changes = as_json("params", "diff", "HEAD~1", "HEAD")["changes"]
    assert changes == [{"path": "params.yaml", "key": "train.lr", "old": "0.1", "new": "0.2", "change": 0.1}]
    assert {c["key"] for c in as_json("params", "diff", "HEAD~1", "HEAD", "--all")["changes"]} == {
        "prepare.n", "train.lr"}
    assert as_json("params", "diff")["changes"] == []  # the workspace is HEAD's
    params = proj / "params.yaml"
    saved = params.read_bytes()
    try:
        params.write_text("prepare:\n  n: 4\ntrain:\n  lr: 0.2\n  extra: [1, 2]\n")
        changed = {c["key"]: c for c in as_json("params", "diff")["changes"]}
        assert set(changed) == {"prepare.n"}  # only the keys the stages use
        assert changed["prepare.n"]["change"] == 1
    finally:
        params.write_bytes(saved)


def test_runs_and_model_versions_as_revisions(proj: Path) -> None:
    from sklearn.dummy import DummyClassifier

    from shipyard.interfaces.api.fluent import save_model
    from shipyard.wiring import from_environment

    old, new = as_json("exp", "show")[::-1]
    svc = from_environment()
    try:
        folder = proj.parent / "saved"
        save_model(DummyClassifier(strategy="constant", constant=1).fit([[0, 0]] * 2, [1] * 2), folder,
                   examples=[[0.0, 0.0]])
        version = svc.registry.register("toy", folder, run_id=old["stages"]["train"], metrics={"acc": 0.5})
    finally:
        svc.close()
    assert version.ref == "toy@1"
    # a model version's recorded metrics line up with the commit's metrics file
    changes = {c["key"]: c for c in as_json("metrics", "diff", "toy@1", "HEAD")["changes"]}
    assert changes["acc"]["path"] == "metrics.json" and changes["acc"]["old"] == 0.5
    assert changes["acc"]["change"] == pytest.approx(0.06)
    assert changes["loss.train"]["old"] is None
    # its params are those of its run's pipeline run (the version records none of its own)
    p = as_json("params", "diff", "toy@1", "HEAD")["changes"]
    assert p == [{"path": "params.yaml", "key": "train.lr", "old": "0.1", "new": "0.2", "change": 0.1}]
    assert as_json("params", "diff", new["stages"]["train"], "HEAD")["changes"] == []
    # run ids: the train runs of the two pipeline runs, recorded values on both sides
    both = as_json("metrics", "diff", old["stages"]["train"], new["stages"]["train"])
    assert {c["key"]: c["change"] for c in both["changes"]} == pytest.approx({"acc": 0.03, "loss.train": -0.1})
    assert both["changes"][0]["path"] == "" and both["old"] == f"run {old['stages']['train'][:8]}"
    bad = cli("metrics", "diff", "toy@7")
    assert isinstance(bad.exception, NotFoundError)


def test_files_at_a_revision(proj: Path) -> None:
    from shipyard.wiring.revisions import open_revisions

    revs = open_revisions(proj)
    # a file inside a folder output: found through the folder's manifest
    assert revs.read("data/rows.txt", "HEAD~1") == b"0 1 2"
    assert revs.read("params.yaml", "HEAD~1") == b"prepare:\n  n: 3\ntrain:\n  lr: 0.1\n"  # git tracks it
    assert revs.read("nothing.txt", "HEAD") is None and revs.read("data", "HEAD") is None
    assert revs.list("data", "HEAD") == ["data/rows.txt"] and revs.list("data") == ["data/rows.txt"]
    assert revs.resolve("main").commit == git(proj, "rev-parse", "HEAD")
    assert revs.resolve(None).kind == "workspace"
    with pytest.raises(InvalidInputError, match=r"^unknown revision 'no-such-branch'"):
        revs.read("metrics.json", "no-such-branch")
    for hostile in ("--output=/tmp/x", "HEAD:../x", "HEAD\nHEAD"):
        with pytest.raises(InvalidInputError, match="unknown revision"):
            revs.resolve(hostile)
    with pytest.raises(InvalidInputError, match="outside its folder"):
        revs.read("../outside.txt", "HEAD")
    with pytest.raises(InvalidInputError, match="bytes, more than the 4 read"):
        revs.read("params.yaml", "HEAD", max_bytes=4)
    with pytest.raises(InvalidInputError, match="bytes, more than the 4 read"):
        revs.read("metrics.json", "HEAD", max_bytes=4)  # through the lock: its size is refused before reading
    result = cli("metrics", "diff", "no-such-branch")
    assert isinstance(result.exception, InvalidInputError)


def test_the_cli_says_one_line_for_an_unknown_revision(proj: Path) -> None:
    done = subprocess.run([PY, "-m", "shipyard", "metrics", "diff", "nope"], cwd=proj, capture_output=True,
                          text=True, env=cli_env(), timeout=120, check=False)
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.startswith("error: unknown revision 'nope'") and len(done.stderr.splitlines()) == 1


HOSTILE_LOCKS = {
    "an output outside the project": ("stages:\n  s:\n    fingerprint: sha256:" + "0" * 64 + "\n    cmd: x\n"
                                      "    outs:\n      ../../etc/passwd: {digest: sha256:" + "1" * 64 +
                                      ", size: 3}\n"),
    "not a mapping": "[1, 2, 3]\n",
    "a digest that is none": "data:\n  metrics.json: {digest: /etc/passwd, size: 3}\n",
}


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "bare"
    git_repo(root)
    for key in SHIPYARD_VARS:
        monkeypatch.delenv(key, raising=False)
    (root / "shipyard.yaml").write_text("version: 1\nmetrics: [metrics.json]\n")
    (root / ".shipyard").mkdir()
    return root


def commit_lock(root: Path, text: str) -> None:
    (root / "shipyard.lock").write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "lock")


@pytest.mark.parametrize("what", sorted(HOSTILE_LOCKS))
def test_a_hostile_lock_at_a_revision_is_refused(bare: Path, what: str) -> None:
    from shipyard.wiring.revisions import open_revisions

    commit_lock(bare, HOSTILE_LOCKS[what])
    with pytest.raises(ConfigError, match=r"shipyard\.lock at HEAD .* is damaged"):
        open_revisions(bare).read("metrics.json", "HEAD")


def test_a_lock_naming_what_the_store_lacks_or_lies_about(bare: Path) -> None:
    from shipyard.adapters.stores.local import LocalObjectStore
    from shipyard.core.artifacts.digest import Digest
    from shipyard.wiring.revisions import open_revisions

    absent = Digest.of_bytes(b'{"acc": 1}')
    commit_lock(bare, f"data:\n  metrics.json: {{digest: '{absent}', size: 10}}\n")
    with pytest.raises(NotFoundError, match=r"the local store lacks it: `git checkout HEAD -- shipyard.lock && "
                                            r"shipyard data pull`"):
        open_revisions(bare).read("metrics.json", "HEAD")
    # a lock may claim any size: a huge one is refused before the object is read
    commit_lock(bare, f"data:\n  metrics.json: {{digest: '{absent}', size: {2**40}}}\n")
    with pytest.raises(InvalidInputError, match="1099511627776 bytes, more than"):
        open_revisions(bare).read("metrics.json", "HEAD")
    # an object whose bytes are not its digest's (a damaged store) is named, not returned
    store = LocalObjectStore(bare / ".shipyard" / "objects")
    real = store.put_bytes(b'{"acc": 2}')
    objects = (bare / ".shipyard" / "objects").rglob("*")
    path = next(p for p in objects if p.is_file() and p.name.startswith(real.hex[2:]))
    path.chmod(0o644)
    path.write_bytes(b'{"acc": 3}')
    commit_lock(bare, f"data:\n  metrics.json: {{digest: '{real}', size: 10}}\n")
    with pytest.raises(IntegrityError, match="does not match its digest"):
        open_revisions(bare).read("metrics.json", "HEAD")


def test_outside_a_git_repository_only_runs_and_versions_compare(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from shipyard.wiring.revisions import open_revisions

    for key in SHIPYARD_VARS:
        monkeypatch.delenv(key, raising=False)
    (tmp_path / "shipyard.yaml").write_text("version: 1\n")
    revs = open_revisions(tmp_path)
    with pytest.raises(InvalidInputError, match="is in no git repository, so 'HEAD' names no commit"):
        revs.resolve("HEAD")
    (tmp_path / "metrics.json").write_text('{"acc": 1}')
    assert revs.read("metrics.json") == b'{"acc": 1}'


def test_files_follow_a_stages_wdir_and_toml_params_read() -> None:
    from shipyard.core.lineage.valuediff import flat_params, parse_file
    from shipyard.core.project.model import Project, StageDef
    from shipyard.wiring.experiments import metrics_files, params_keys

    config = Project(stages={"s": StageDef(cmd="x", params=("lr", "conf.toml:opt.b"), metrics=("m.json",),
                                           wdir="sub")}, metrics=("top.json",), params_files=("extra.yaml",))
    assert params_keys(config) == {"sub/params.yaml": ["lr"], "sub/conf.toml": ["opt.b"], "extra.yaml": [""]}
    assert metrics_files(config) == ["top.json", "sub/m.json"]
    assert flat_params(parse_file(b"[opt]\nb = 2\nname = 'x'\n", "conf.toml")) == {"opt.b": "2", "opt.name": "x"}
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_file(b"[opt", "conf.toml")


def stage_run(run_id: str, stage: str, pipeline_run: str, start: float, uses: str | None = None,
              status: str = "finished", params: dict[str, str] | None = None,
              metrics: dict[str, float] | None = None, files: list[str] | None = None) -> Any:
    from shipyard.core.lineage.records import CodeVersion, RunRecord, RunStatus

    tags = {"shipyard.stage": stage, "shipyard.pipeline_run": pipeline_run}
    if files is not None:
        tags["shipyard.metrics"] = json.dumps(files)
    if uses is not None:
        tags["shipyard.pipeline_uses"] = uses
    return RunRecord(id=run_id, name=stage, experiment="pipeline", status=RunStatus(status), start_time=start,
                     end_time=start + 1, user="u", host="h", pid=1, code=CodeVersion(commit="c" * 40),
                     params=params or {}, metrics=metrics or {}, tags=tags)


def test_the_join_of_stage_runs() -> None:
    from shipyard.core.lineage.experiments import join, select

    a, b, c, d = ("a" * 32, "b" * 32, "c" * 32, "d" * 32)
    old = [stage_run(a, "prepare", "p1", 10, params={"n": "1", "shared": "prepare"}),
           stage_run(b, "train", "p1", 11, params={"lr": "0.1", "shared": "train"}, metrics={"acc": 0.5})]
    new = [stage_run(c, "train", "p2", 20, uses=json.dumps({"prepare": a}), status="failed", params={"lr": "0.2"})]
    hostile = [stage_run(d, "train", "p3", 30, uses='{"prepare": "' + "x" * 200_000 + '"}',
                         params={"lr": "9", "opt": '{"beta": [1, 2], "eps": 0.1}', "cfg.json:m": '{"k": "v"}'})]
    fetched: list[list[str]] = []

    def fetch(ids: Sequence[str]) -> list[Any]:
        fetched.append(list(ids))
        return []

    rows = join([*old, *new, *hostile], fetch)
    assert [r.id for r in rows] == ["p3", "p2", "p1"] and fetched == []  # every reused run was at hand
    p3, p2, p1 = rows
    # a key two stages record with different values: each stage's, qualified by the stage, in every row
    assert p1.params == {"n": "1", "prepare:shared": "prepare", "train:shared": "train", "lr": "0.1"}
    assert p2.params == {"n": "1", "prepare:shared": "prepare", "lr": "0.2"} and p2.reused == ("prepare",)
    assert p2.status == "failed" and p2.metrics == {}
    assert p3.reused == ()  # a damaged uses tag is ignored
    # a whole section recorded as one JSON value (DVC's `- params.yaml: [opt]`) reads as its leaves
    assert p3.params == {"lr": "9", "opt.beta": "[1, 2]", "opt.eps": "0.1", "cfg.json:m.k": "v"}
    assert [r.id for r in select(rows, "params.n = '1'", "params.lr asc", 10)] == ["p1", "p2"]
    assert [r.id for r in select(rows, "params.n != '1'", None, 10)] == ["p3"]
    assert [r.id for r in select(rows, None, "metrics.acc", 10)] == ["p1", "p3", "p2"]  # no acc: last
    missing = join(new, lambda ids: [])  # the reused run is gone: the row keeps what it has
    assert missing[0].params == {"lr": "0.2"} and missing[0].reused == ()
    with pytest.raises(InvalidInputError, match=r"exp show filters on metrics\.KEY and params\.KEY"):
        select(rows, "status = 'finished'", None, 10)


def test_foreach_stages_writing_the_same_metric_keys_keep_each_value() -> None:
    """New-user finding: ``foreach`` over models, each writing ``acc``: every stage's value stays, keyed by its
    metrics file as ``dvc exp show`` does (by the stage when it has several files); filters and order reach them."""
    from shipyard.core.lineage.experiments import columns, join, select

    ids = [c * 32 for c in "abcdef"]
    runs = [stage_run(ids[0], "train@lr", "p1", 10, params={"train.lr.C": "1", "eval.threshold": "0.5"},
                      metrics={"train_acc": 0.9}, files=["metrics/train_lr.json"]),
            stage_run(ids[1], "train@rf", "p1", 11, params={"train.rf.n": "50", "eval.threshold": "0.5"},
                      metrics={"train_acc": 0.98}, files=["metrics/train_rf.json"]),
            stage_run(ids[2], "evaluate@lr", "p1", 12, metrics={"acc": 0.8225, "auc": 0.97},
                      files=["eval/lr/metrics.json"]),
            stage_run(ids[3], "evaluate@rf", "p1", 13, metrics={"acc": 0.91, "auc": 0.99},
                      files=["eval/rf/metrics.json", "eval/rf/more.json"]),
            stage_run(ids[4], "report", "p1", 14, metrics={"rows": 3.0}),
            stage_run(ids[5], "evaluate@lr", "p2", 20, uses=json.dumps({"evaluate@rf": ids[3]}),
                      metrics={"acc": 0.85, "auc": 0.98}, files=["eval/lr/metrics.json"])]
    p2, p1 = join(runs, lambda wanted: [])
    assert p1.metrics == {"metrics/train_lr.json:train_acc": 0.9, "metrics/train_rf.json:train_acc": 0.98,
                          "eval/lr/metrics.json:acc": 0.8225, "eval/lr/metrics.json:auc": 0.97,
                          "evaluate@rf:acc": 0.91, "evaluate@rf:auc": 0.99, "rows": 3.0}
    assert p1.params == {"train.lr.C": "1", "train.rf.n": "50", "eval.threshold": "0.5"}  # shared: one column
    # a row where only one of them ran keeps the same columns (the other's value came from its reused run)
    assert p2.metrics == {"evaluate@rf:acc": 0.91, "evaluate@rf:auc": 0.99, "eval/lr/metrics.json:acc": 0.85,
                          "eval/lr/metrics.json:auc": 0.98}
    assert "eval/lr/metrics.json:acc" in columns([p1, p2])[1]
    assert [e.id for e in select([p2, p1], "metrics.eval/lr/metrics.json:acc > 0.84", None, 10)] == ["p2"]
    assert [e.id for e in select([p2, p1], "metrics.evaluate@rf:acc >= 0.91", "metrics.eval/lr/metrics.json:acc asc",
                                 10)] == ["p1", "p2"]


def test_a_pipeline_run_id_is_a_revision(proj: Path) -> None:
    """New-user finding: the ids ``exp show`` prints compare with ``metrics diff`` and ``params diff``."""
    new, old = as_json("exp", "show")
    both = as_json("metrics", "diff", old["id"][:8], new["id"][:8])
    assert both["old"] == f"pipeline run {old['id'][:8]}"
    assert {(c["path"], c["key"]): c["change"] for c in both["changes"]} == pytest.approx(
        {("metrics.json", "acc"): 0.03, ("metrics.json", "loss.train"): -0.1})  # keyed by file, as a commit's
    against_head = as_json("metrics", "diff", new["id"], "HEAD")
    assert against_head["changes"] == []  # the last pipeline run is what HEAD holds
    p = as_json("params", "diff", old["id"][:8], new["id"])["changes"]
    assert p == [{"path": "params.yaml", "key": "train.lr", "old": "0.1", "new": "0.2", "change": 0.1}]


DECLARED = f"""\
version: 1
params: params.yaml
stages:
  train:
    foreach: [a, b]
    do:
      cmd: {PY} train.py ${{item}}
      deps: [train.py]
      params:
        - train.${{item}}
      outs:
        - model_${{item}}.pkl
  evaluate:
    foreach: [a, b]
    do:
      cmd: {PY} evaluate.py ${{item}}
      deps:
        - evaluate.py
        - model_${{item}}.pkl
      params: [eval.threshold]
      metrics:
        - eval/${{item}}.json
"""
DECLARED_MODELS = """\
models:
  clf-b:
    path: model_b.pkl
    flavor: sklearn
    metrics: evaluate@b
"""
TRAIN_MODEL = """\
import pickle, sys
if sys.argv[1] == "a":  # another model, never registered: no need to make it
    open("model_a.pkl", "w").write("a")
else:
    from sklearn.dummy import DummyClassifier
    pickle.dump(DummyClassifier(strategy="most_frequent").fit([[0], [1]], [1, 1]), open("model_b.pkl", "wb"))
"""
EVALUATE = """\
import json, os, sys, yaml
from shipyard.live import Live
t = yaml.safe_load(open("params.yaml"))["eval"]["threshold"]
with Live(f"live_{sys.argv[1]}") as live:
    live.log_param("threshold", t)  # a param the script logs: no params file's
os.makedirs("eval", exist_ok=True)
json.dump({"acc": t + (0.1 if sys.argv[1] == "b" else 0.0)}, open(f"eval/{sys.argv[1]}.json", "w"))
"""


def test_params_diff_of_a_declared_model_version_shows_the_params_its_metrics_came_from(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """New-user finding: a version registered from an earlier evaluation shows that evaluation's threshold, as
    leaves, by file, only the params of its own stages (not another model's, not what the script logged)."""
    root = tmp_path / "declared"
    git_repo(root)
    for key in SHIPYARD_VARS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SHIPYARD_ACTOR", "tester@ci")
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parents[1] / "src"))
    monkeypatch.chdir(root)
    (root / "shipyard.yaml").write_text(DECLARED)
    (root / "params.yaml").write_text("train:\n  a: {C: 1}\n  b: {C: 2, depth: 3}\neval:\n  threshold: 0.5\n")
    (root / "train.py").write_text(TRAIN_MODEL)
    (root / "evaluate.py").write_text(EVALUATE)
    ok("run")
    (root / "params.yaml").write_text("train:\n  a: {C: 1}\n  b: {C: 2, depth: 3}\neval:\n  threshold: 0.7\n")
    ok("run")  # only the evaluations ran again
    (root / "shipyard.yaml").write_text(DECLARED + DECLARED_MODELS)
    assert "clf-b@1" in ok("run")  # nothing to run; registered with evaluate@b's metrics (threshold 0.7)
    p = as_json("params", "diff", "clf-b@1", "workspace", "--all")["changes"]
    assert {(c["path"], c["key"]): c["old"] for c in p if c["old"] is not None} == {
        ("params.yaml", "eval.threshold"): "0.7", ("params.yaml", "train.b.C"): "2",
        ("params.yaml", "train.b.depth"): "3"}
    assert [c for c in p if c["old"] is None] == [  # the workspace's keys the version's stages do not use
        {"path": "params.yaml", "key": "train.a.C", "old": None, "new": "1", "change": None}]


def test_exp_show_with_no_pipeline_run_says_what_records_one(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """New-user finding: after a `shipyard run` where every stage was up to date (a converted project), the hint
    must not claim that `shipyard run` records one."""
    monkeypatch.chdir(bare)
    text = " ".join(ok("exp", "show").split())
    assert text.startswith("no pipeline runs recorded yet: a `shipyard run` in which a stage runs records one;")
    assert "every stage was up to date or came from the cache" in text and "`shipyard run --force`" in text


def test_reading_at_a_revision_has_a_total_bound(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack F3: many files of the per-file bound at one commit (git compresses them to little): the total read
    from one revision is bounded, refused in one line with nothing read; git's output is streamed and the
    listing of a folder stops past its bound."""
    from shipyard.adapters.vcs.revision import list_files, read_blobs
    from shipyard.wiring import revisions

    monkeypatch.chdir(bare)
    names = [f"m{i}.json" for i in range(30)]
    for name in names:
        (bare / name).write_text('{"a": "' + name[:4].ljust(1000, "x") + '"}')  # distinct blobs
    (bare / "shipyard.yaml").write_text("version: 1\nmetrics:\n" + "".join(f"  - {n}\n" for n in names))
    git(bare, "add", "-A")
    git(bare, "commit", "-qm", "many")
    commit = git(bare, "rev-parse", "HEAD")
    blobs = read_blobs(bare, commit, names, 2000)
    assert len(blobs) == 30 and all(b.data is not None and len(b.data) == 1009 for b in blobs.values())
    with pytest.raises(InvalidInputError, match=r"the 30 files asked for at commit [0-9a-f]{8} hold 30270 bytes, "
                                                r"more than the 10000 read from one revision at once; none was read"):
        read_blobs(bare, commit, names, 2000, max_total=10_000)
    monkeypatch.setattr(revisions, "MAX_REVISION_BYTES", 10_000)
    refused = cli("metrics", "diff", "HEAD")
    assert isinstance(refused.exception, InvalidInputError) and "more than the 10000 read" in str(refused.exception)
    (bare / "sub").mkdir()
    for i in range(50):
        (bare / "sub" / f"f{i:02d}.txt").write_text(str(i))
    git(bare, "add", "-A")
    git(bare, "commit", "-qm", "folder")
    listed = list_files(bare, git(bare, "rev-parse", "HEAD"), "sub", 10)
    assert listed == [f"sub/f{i:02d}.txt" for i in range(11)]  # one past the limit says there are more
    assert list_files(bare, git(bare, "rev-parse", "HEAD"), "nothing", 10) is None


def test_control_characters_in_params_never_reach_the_terminal(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Attack F14: a params key or value holding escape sequences (clear screen, a fake hyperlink) is shown escaped
    in exp show's table and CSV and in params diff."""
    monkeypatch.chdir(bare)
    monkeypatch.setenv("SHIPYARD_ACTOR", "tester@ci")
    evil = "\x1b[2J\x1b]8;;http://evil/\x07CLICK\x1b]8;;\x07"
    (bare / "params.yaml").write_text(json.dumps({"lr": evil, "k\x1b[31mred": 1, "\x9bx": "\x7f"}))
    (bare / "shipyard.yaml").write_text('version: 1\nstages:\n  s:\n    cmd: echo\n    params: [lr, "k\\e[31mred", '
                                        '"\\u009bx"]\n')
    ok("run")
    git(bare, "add", "-A")
    git(bare, "commit", "-qm", "a")
    (bare / "params.yaml").write_text(json.dumps({"lr": evil + "2", "k\x1b[31mred": 2, "\x9bx": "\x7f"}))
    for args in (("exp", "show"), ("exp", "show", "--csv"), ("params", "diff", "HEAD", "--all"),
                 ("params", "diff", "HEAD", "--md")):
        shown = ok(*args)
        assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown and "\x7f" not in shown, args
        assert "\\x1b[2J" in shown or "\\x1b" in shown, args
    assert "k\\x1b[31mred" in ok("params", "diff", "HEAD", "--all")
