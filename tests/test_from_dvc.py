"""``shipyard init --from-dvc`` on a DVC project made by the real ``dvc`` (3.67, in a side venv), and the
pure conversion on hostile DVC files.

The project is examples/dvc-get-started (DVC's tutorial shape): ``dvc add`` of its data, ``dvc repro``
of its four stages, a folder remote. Converted, it is up to date in Shipyard without
running anything, and its stages rerun by Shipyard write the same bytes DVC's run wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import shipyard
from shipyard.config import load_settings
from shipyard.core.project.from_dvc import (
    Report,
    convert_yaml,
    parse_dir_listing,
    parse_dvc_config,
    parse_dvc_file,
    parse_dvc_lock,
)
from shipyard.core.workspace.data import status as data_status
from shipyard.core.workspace.lockfile import load_lock
from shipyard.errors import ConfigError, ConflictError
from shipyard.wiring import open_workspace
from shipyard.wiring.from_dvc import convert
from tests.conftest import cli_env, dvc_venv, make_bucket
from tests.conftest import shipyard as run_shipyard

pytestmark = pytest.mark.xdist_group("from-dvc")  # the module's DVC project is made once, on one worker

EXAMPLE = Path(shipyard.__file__).parent / "examples" / "dvc-get-started"
OUTPUTS = ("data/prepared", "data/features", "model.pkl", "eval")


def dvc_executable() -> str:
    """The ``dvc`` of the tests' side venv (tests/conftest.py ``dvc_venv``)."""
    return str(dvc_venv() / "dvc")


def files_of(root: Path, rel: str) -> dict[str, str]:
    """``{path: sha256}`` of every file at ``root/rel`` (a file or a folder)."""
    top = root / rel
    paths = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


@pytest.fixture(scope="module")
def dvc_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """The tutorial replica as DVC leaves it after add, repro and push; and its outputs' digests."""
    dvc = dvc_executable()
    top = tmp_path_factory.mktemp("dvc")
    root = top / "project"
    shutil.copytree(EXAMPLE, root)
    # the stages run with this interpreter (its scikit-learn; shipyard.live where dvclive is absent)
    env = cli_env(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                  PYTHONPATH=str(Path(shipyard.__file__).parents[1]), DVC_NO_ANALYTICS="1",
                  GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")

    def sh(*args: str) -> None:
        done = subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{' '.join(args)}: {done.stdout}{done.stderr}"

    sh("git", "init", "-q")
    sh(dvc, "init", "-q")
    (root / "extra").mkdir()
    for i in range(5):
        (root / "extra" / f"part-{i}.txt").write_text(f"extra file {i}\n" * (i + 1))
    sh(dvc, "add", "-q", "data/data.xml", "extra")
    with open(root / ".dvc" / "config", "a") as config:  # what `dvc remote add -d storage FOLDER` writes
        config.write(f"[core]\n    remote = storage\n['remote \"storage\"']\n    url = {top / 'remote'}\n")
    sh(dvc, "repro", "-q")
    outputs = {k: v for rel in OUTPUTS for k, v in files_of(root, rel).items()}
    yield root, outputs


def fresh_copy(dvc_project: tuple[Path, dict[str, str]], tmp_path: Path) -> Path:
    root = tmp_path / "project"
    shutil.copytree(dvc_project[0], root, symlinks=True)
    return root


def env_for(root: Path) -> dict[str, str]:
    return cli_env(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                   PYTHONPATH=str(Path(shipyard.__file__).parents[1]))


@pytest.mark.slow
def test_converted_project_is_up_to_date_and_reruns_to_the_same_bytes(
        dvc_project: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root = fresh_copy(dvc_project, tmp_path)
    env = env_for(root)
    done = run_shipyard("init", "--from-dvc", "--json", env=env, cwd=root)
    report = json.loads(done.stdout)
    assert report["stages"] == {s: "up to date (from dvc.lock)" for s in ("prepare", "featurize", "train", "evaluate")}
    assert report["remotes"] == {"storage": f"folder {dvc_project[0].parent / 'remote'}"}
    assert "text-classification" in report["models"]
    assert [n["what"] for n in report["not_carried"]] == ["artifact stackoverflow-dataset"]
    assert (root / "dvc.yaml").exists() and (root / ".dvc").is_dir()  # DVC's files are left in place
    # the replica's .gitignore files are what `dvc add` and `dvc repro` write (DVC added nothing to them)
    assert (root / "data" / ".gitignore").read_text() == (EXAMPLE / "data" / ".gitignore").read_text()
    assert (root / ".gitignore").read_text() == (EXAMPLE / ".gitignore").read_text() + "/extra\n/.shipyard\n"

    status = json.loads(run_shipyard("status", "--json", env=env, cwd=root).stdout)
    assert {s["stage"]: s["state"] for s in status} == {s: "up-to-date" for s in
                                                        ("prepare", "featurize", "train", "evaluate")}
    ws = open_workspace(load_settings(env, root))
    assert {d.path: d.state for d in data_status(ws, load_lock(root))} == {"data/data.xml": "unchanged",
                                                                          "extra": "unchanged"}

    for rel in OUTPUTS:  # Shipyard's own run of every stage writes what DVC's run wrote, byte for byte
        shutil.rmtree(root / rel) if (root / rel).is_dir() else (root / rel).unlink()
    run_shipyard("run", "--force", env=env, cwd=root)
    assert {k: v for rel in OUTPUTS for k, v in files_of(root, rel).items()} == dvc_project[1]
    status = json.loads(run_shipyard("status", "--json", env=env, cwd=root).stdout)
    assert {s["state"] for s in status} == {"up-to-date"}
    # the declared model (DVC's type: model artifact) was registered by Shipyard's own run of train and evaluate
    models = json.loads(run_shipyard("models", "list", "--json", env=env, cwd=root).stdout)
    assert [(m["name"], m["latest_version"]) for m in models] == [("text-classification", 1)]
    with open(root / "model.pkl", "rb") as f:  # this test's own model: its labels are the integers 0 and 1
        assert json.dumps(pickle.load(f).classes_.tolist()) == "[0, 1]"  # (a served model answers 0, not 0.0)


@pytest.mark.slow
def test_outputs_only_in_dvcs_cache_are_restored_without_running(
        dvc_project: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root = fresh_copy(dvc_project, tmp_path)
    for rel in (*OUTPUTS, "data/data.xml", "extra"):  # as after a clone and `dvc fetch`: the cache only
        shutil.rmtree(root / rel) if (root / rel).is_dir() else (root / rel).unlink()
    report = convert(root, env_for(root))
    # only what a stage reads is restored (as `dvc checkout` would); `extra`, which no stage reads, is left
    assert report.data["data/data.xml"] == "DVC's cache (restored into the workspace, as `dvc checkout` does)"
    assert report.data["extra"] == ("DVC's cache (not in the workspace: `shipyard data checkout` writes it "
                                    "there)")
    assert not (root / "extra").exists()
    assert set(report.stages.values()) == {"up to date (from dvc.lock)"}
    env = env_for(root)
    # (its exit status is the declared model's: registered only from a Shipyard run of train, not DVC's pickle)
    done = run_shipyard("run", "--json", env=env, cwd=root, check=False)
    assert {o["stage"]: o["result"] for o in json.loads(done.stdout)} == {
        "prepare": "cached", "featurize": "cached", "train": "cached", "evaluate": "cached"}
    assert {k: v for rel in OUTPUTS for k, v in files_of(root, rel).items()} == dvc_project[1]


def test_a_corrupt_cache_file_is_caught_and_nothing_of_it_stored(
        dvc_project: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root = fresh_copy(dvc_project, tmp_path)
    (root / "extra" / "part-2.txt").unlink()
    md5 = hashlib.md5((dvc_project[0] / "extra" / "part-2.txt").read_bytes()).hexdigest()
    cached = root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]
    os.chmod(cached, 0o644)
    cached.write_bytes(b"not what DVC recorded\n")
    report = convert(root, env_for(root))
    assert "extra" not in report.data
    assert any(what == "extra" and "corrupt" in why for what, why in report.not_carried)
    lock = (root / "shipyard.lock").read_text()
    assert "extra" not in lock and "data/data.xml" in lock
    store = root / ".shipyard" / "objects" / "sha256"
    bad = hashlib.sha256(b"not what DVC recorded\n").hexdigest()
    assert not (store / bad[:2] / bad[2:]).exists()


def test_existing_files_are_kept_without_force(dvc_project: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root = fresh_copy(dvc_project, tmp_path)
    (root / "shipyard.yaml").write_text("version: 1\n")
    with pytest.raises(ConflictError, match="--force"):
        convert(root, env_for(root))
    assert (root / "shipyard.yaml").read_text() == "version: 1\n"
    assert not (root / "shipyard.lock").exists()
    convert(root, env_for(root), force=True)
    assert "stages:" in (root / "shipyard.yaml").read_text()


def test_a_workspace_link_is_not_followed(dvc_project: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    root = fresh_copy(dvc_project, tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("outside the project\n")
    (root / "data" / "data.xml").unlink()
    (root / "data" / "data.xml").symlink_to(secret)
    report = convert(root, env_for(root))
    assert report.data["data/data.xml"] == "DVC's cache"  # the link is skipped, DVC's recorded version is used
    assert "symbolic link" in report.stages["prepare"]


TEMPLATED = """\
vars:
  - prefix: out
stages:
  gen:
    foreach: ${sizes}
    do:
      cmd: python -c "open('${prefix}-${item}.txt', 'w').write('${item}' * ${scale})"
      params:
        - scale
      outs:
        - ${prefix}-${item}.txt
  greet:
    wdir: sub
    cmd: python greet.py
    deps:
      - ../out-small.txt
      - greet.py
    params:
      - params.yaml:
          - greeting
    outs:
      - greeting.txt
    metrics:
      - m.json:
          cache: false
"""
GREET = """\
import json
import yaml
with open("params.yaml") as f:
    greeting = yaml.safe_load(f)["greeting"]
with open("greeting.txt", "w") as f:
    f.write(greeting)
with open("m.json", "w") as f:
    json.dump({"n": 1}, f)
"""


@pytest.mark.slow
def test_foreach_vars_wdir_dict_params_and_uncached_metrics_convert(tmp_path: Path) -> None:
    """dvc.yaml's templating, run by the real dvc, then converted: the NAME@item stages, the wdir-relative
    paths and params file, and the cache: false metrics file match dvc.lock, so all is up to date."""
    dvc = dvc_executable()
    root = tmp_path / "templated"
    (root / "sub").mkdir(parents=True)
    (root / "params.yaml").write_text("sizes: [small, large]\nscale: 3\n")
    (root / "sub" / "params.yaml").write_text("greeting: hello\n")
    (root / "sub" / "greet.py").write_text(GREET)
    (root / "dvc.yaml").write_text(TEMPLATED)
    env = env_for(root)
    for cmd in (["git", "init", "-q"], [dvc, "init", "-q"], [dvc, "repro", "-q"]):
        done = subprocess.run(cmd, cwd=root, env={**env, "DVC_NO_ANALYTICS": "1"}, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    report = convert(root, env)
    assert report.stages == {"gen@small": "up to date (from dvc.lock)", "gen@large": "up to date (from dvc.lock)",
                             "greet": "up to date (from dvc.lock)"}
    assert "sub/m.json" not in report.data  # cache: false: left to git, as DVC leaves it
    (root / "sub" / "params.yaml").write_text("greeting: hi\n")
    status = json.loads(run_shipyard("status", "--json", env=env, cwd=root).stdout)
    assert {s["stage"]: s["state"] for s in status} == {"gen@small": "up-to-date", "gen@large": "up-to-date",
                                                        "greet": "changed"}


def test_dvc2_cache_and_its_text_md5(tmp_path: Path) -> None:
    """DVC 2's .dvc files (no ``hash: md5``) name text files by the md5 of their bytes with CRLF turned to
    LF, in .dvc/cache/xx/ (no files/md5/): read from there, checked that way, stored as the bytes they are."""
    root = tmp_path / "old"
    (root / ".dvc").mkdir(parents=True)
    small = b"a,b\r\n1,2\r\n"
    big = (b"x" * (1024 * 1024 - 1) + b"\r\n") * 2  # over the in-memory size, a CRLF across a chunk boundary
    for name, body in (("small.csv", small), ("big.csv", big)):
        md5 = hashlib.md5(body.replace(b"\r\n", b"\n")).hexdigest()
        (root / ".dvc" / "cache" / md5[:2]).mkdir(parents=True, exist_ok=True)
        (root / ".dvc" / "cache" / md5[:2] / md5[2:]).write_bytes(body)
        (root / f"{name}.dvc").write_text(f"outs:\n- md5: {md5}\n  size: {len(body)}\n  path: {name}\n")
    report = convert(root, env_for(root))
    assert report.data == {n: "DVC's cache (not in the workspace: `shipyard data checkout` writes it there)"
                           for n in ("small.csv", "big.csv")}
    lock = load_lock(root)
    assert lock.data["big.csv"].digest.hex == hashlib.sha256(big).hexdigest()
    assert lock.data["small.csv"].digest.hex == hashlib.sha256(small).hexdigest()


def test_an_s3_remote_is_carried_over_and_takes_a_push(dvc_project: tuple[Path, dict[str, str]], tmp_path: Path,
                                                      s3_endpoint: str) -> None:
    """A DVC remote on S3-compatible storage (as `dvc remote add` + `dvc remote modify endpointurl` write it)
    becomes a Shipyard remote that `shipyard data push` uses as it is."""
    root = fresh_copy(dvc_project, tmp_path)
    bucket = make_bucket(s3_endpoint)
    (root / ".dvc" / "config").write_text(f"[core]\n    remote = s3store\n['remote \"s3store\"']\n"
                                          f"    url = s3://{bucket}/dvcstore\n    endpointurl = {s3_endpoint}\n")
    report = convert(root, env_for(root))
    assert report.remotes == {"s3store": f"S3 s3://{bucket}/dvcstore"}
    env = {**env_for(root), **{k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                                          "AWS_DEFAULT_REGION")}}
    pushed = json.loads(run_shipyard("data", "push", "--json", env=env, cwd=root).stdout)
    assert pushed["transferred"] > 0 and pushed["objects"] == pushed["transferred"]


# -- the pure part, on hostile input ------------------------------------------------------------------

def test_paths_that_leave_the_project_are_refused() -> None:
    for bad in ("../../etc/passwd", "/etc/passwd", "a/../../../x"):
        with pytest.raises(ValueError, match="outside the project"):
            parse_dvc_file({"outs": [{"path": bad, "md5": "0" * 32, "hash": "md5"}]}, "data/x.dvc")
    with pytest.raises(ValueError, match="not an md5"):
        parse_dvc_file({"outs": [{"path": "x", "md5": "../../etc"}]}, "x.dvc")
    with pytest.raises(ValueError, match=r"outside its folder|relative"):
        parse_dir_listing([{"relpath": "../escape", "md5": "0" * 32}], "listing")
    with pytest.raises(ValueError, match="twice"):
        parse_dir_listing([{"relpath": "a", "md5": "0" * 32}, {"relpath": "a", "md5": "1" * 32}], "listing")
    with pytest.raises(ValueError, match="lists a/b as a file and as a folder"):
        parse_dir_listing([{"relpath": "a/b/c", "md5": "0" * 32}, {"relpath": "a/b", "md5": "1" * 32}], "listing")
    report = Report()
    stages = parse_dvc_lock({"stages": {"ok": {"cmd": "true", "outs": [{"path": "o", "md5": "a" * 32}]},
                                        "bad": {"cmd": "true", "outs": [{"path": "/etc/shadow", "md5": "a" * 32}]},
                                        "odd": ["not", "a", "mapping"]}}, {}, report)
    assert list(stages) == ["ok"]
    assert [w for w, _ in report.not_carried] == ["dvc.lock stage bad", "dvc.lock stage odd"]


def test_remotes_credentials_and_artifacts() -> None:
    report = Report()
    config = parse_dvc_config([(".dvc/config", "[core]\n    remote = s3store\n"
                                               "['remote \"s3store\"']\n    url = s3://bucket/dvc\n"
                                               "    endpointurl = http://127.0.0.1:9000\n"
                                               "['remote \"web\"']\n    url = https://remote.dvc.org/get-started\n"
                                               "['remote \"near\"']\n    url = ../storage\n"),
                               (".dvc/config.local", "['remote \"s3store\"']\n    access_key_id = AKIAXXXX\n"
                                                     "    secret_access_key = hunter2\n")], report)
    body = convert_yaml({"stages": {"train": {"cmd": "python train.py", "outs": ["model.onnx"]}},
                         "artifacts": {"m": {"path": "model.onnx", "type": "model", "labels": ["a"]},
                                       "weird": {"path": "model.bin", "type": "model"}},
                         "datasets": [{"name": "x"}]}, config, report)
    assert body["remotes"] == {"s3store": {"url": "s3://bucket/dvc", "endpoint_url": "http://127.0.0.1:9000",
                                           "allow_http": True},
                               "web": {"url": "https://remote.dvc.org/get-started", "layout": "dvc"},
                               "near": {"url": "storage"}}  # DVC reads it from .dvc/, Shipyard from the top
    assert body["default_remote"] == "s3store"
    assert body["models"] == {"m": {"path": "model.onnx", "flavor": "onnx", "labels": ["a"]}}
    assert "hunter2" not in json.dumps(body) and "AKIAXXXX" not in json.dumps(body)
    skipped = dict(report.not_carried)
    assert report.remotes["web"].startswith("read-only HTTP remote https://remote.dvc.org/... ")
    assert "access_key_id" in skipped["remote s3store credentials"]
    assert "flavor" in skipped["artifact weird"]
    assert "dvc.yaml datasets" in skipped


def test_credentials_and_private_remotes_stay_out_of_shipyard_yaml() -> None:
    """A user name or password written into a URL is left out; what only .dvc/config.local (DVC's private,
    git-ignored file) sets never reaches shipyard.yaml, which is committed; no secret is ever reported."""
    report = Report()
    config = parse_dvc_config([
        (".dvc/config", "[core]\n    remote = team\n['remote \"team\"']\n    url = s3://bucket/x\n"
                        "['remote \"shared\"']\n    url = s3://KEYID:S3CRET@bucket/y\n"
                        "    endpointurl = https://AKIAEXAMPLE:wJalrSECRETKEY@minio.example.com\n"),
        (".dvc/config.local", "[core]\n    remote = mine\n"
                              "['remote \"team\"']\n    endpointurl = https://AKIAEXAMPLE:wJalrSECRETKEY@minio.example.com\n"
                              "    secret_access_key = wJalrSECRETKEY\n"
                              "['remote \"mine\"']\n    url = /home/alice/private-store\n"
                              "['remote \"h\"']\n    url = https://bob:ghp_TOKEN123@dvc.example.com/store?t=TOK2\n")],
        report)
    body = convert_yaml({"stages": {}}, config, report)
    assert body["remotes"] == {"team": {"url": "s3://bucket/x"},
                               "shared": {"url": "s3://bucket/y", "endpoint_url": "https://minio.example.com"}}
    assert body["default_remote"] == "team"
    shown = json.dumps([body, report.to_dict()])
    for secret in ("wJalrSECRETKEY", "AKIAEXAMPLE", "S3CRET", "KEYID", "ghp_TOKEN123", "bob", "TOK2",
                   "/home/alice"):
        assert secret not in shown
    skipped = dict(report.not_carried)
    assert "credentials not carried over" in skipped["remote shared credentials"]
    assert "env:NAME" in skipped["remote shared credentials"]
    assert "secret_access_key" in skipped["remote team credentials"]
    assert "endpointurl" in skipped["remote team local settings"]
    for private in ("mine", "h"):
        assert "only in .dvc/config.local" in skipped[f"remote {private}"]
    assert "'mine'" in skipped["default remote"]
    # an HTTP remote (committed) becomes a read-only one, without its user name, password or query (a token)
    report = Report()
    body = convert_yaml({}, parse_dvc_config([(".dvc/config", "['remote \"web\"']\n    url = "
                                                              "https://bob:ghp_T@dvc.example.com/s?token=T2\n"
                                                              "    auth = basic\n    password = hunter2\n")], report),
                        report)
    assert body["remotes"] == {"web": {"url": "https://dvc.example.com/s", "layout": "dvc"}}
    skipped = dict(report.not_carried)
    assert "query string" in skipped["remote web query"]
    assert skipped["remote web credentials"].startswith("password, a user name or password in a URL, auth: not "
                                                        "carried over")
    shown = json.dumps([body, report.to_dict()])
    assert "ghp_T" not in shown and "T2" not in shown and "hunter2" not in shown and "bob" not in shown


def test_an_unreadable_private_config_shows_no_text_of_it() -> None:
    report = Report()
    parse_dvc_config([(".dvc/config.local", "['remote \"x\"'\n    password = hunter2\n")], report)
    assert report.not_carried[0][0] == ".dvc/config.local"
    assert "hunter2" not in json.dumps(report.to_dict()) and "line 1" in report.not_carried[0][1]



def _dvc_cache_put(root: Path, body: bytes, suffix: str = "") -> str:
    md5 = hashlib.md5(body).hexdigest()
    folder = root / ".dvc" / "cache" / "files" / "md5" / md5[:2]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / (md5[2:] + suffix)).write_bytes(body)
    return md5


def _hand_made_dvc_project(root: Path, deps: list[tuple[str, str]], cmd: str = "echo hi > out.txt") -> None:
    """A DVC project with one stage ``s`` that dvc.lock records as reading ``deps`` (path, md5)."""
    (root / ".dvc").mkdir(parents=True, exist_ok=True)
    (root / ".dvc" / "config").write_text("[core]\n")
    (root / "dvc.yaml").write_text(f"stages:\n  s:\n    cmd: {cmd}\n    deps: [{', '.join(p for p, _ in deps)}]\n"
                                   "    outs: [out.txt]\n")
    (root / "out.txt").write_text("hi\n")
    out_md5 = hashlib.md5(b"hi\n").hexdigest()
    lock_deps = "".join(f"    - path: {p}\n      md5: {m}\n      hash: md5\n" for p, m in deps)
    (root / "dvc.lock").write_text(f"schema: '2.0'\nstages:\n  s:\n    cmd: {cmd}\n    deps:\n{lock_deps}"
                                   f"    outs:\n    - path: out.txt\n      md5: {out_md5}\n      hash: md5\n")


def test_a_dependency_through_a_link_is_never_walked(tmp_path: Path) -> None:
    """A dvc.lock folder dependency that is a symbolic link (to / in the attack) is reported at once, never
    walked or hashed through the link; a folder holding a file its listing lacks is changed."""
    root = tmp_path / "p"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_text("one\n")
    root.mkdir()
    (root / "link").symlink_to(outside)
    (root / "real").mkdir()
    (root / "real" / "f").write_text("one\n")
    (root / "real" / "extra").write_text("not listed\n")
    listing = json.dumps([{"md5": hashlib.md5(b"one\n").hexdigest(), "relpath": "f"}]).encode()
    md5 = _dvc_cache_put(root, listing, ".dir") + ".dir"
    _hand_made_dvc_project(root, [("link", md5)])
    report = convert(root, env_for(root))
    assert report.stages["s"] == ("dependency link: link is a symbolic link, which Shipyard never follows: not "
                                  "checked: it runs once under Shipyard")
    _hand_made_dvc_project(root, [("real", md5)])
    report = convert(root, env_for(root), force=True)
    assert report.stages["s"] == ("dependency real: changed since dvc.lock (extra is not in its file list): it "
                                  "runs once under Shipyard")
    (root / "real" / "extra").unlink()
    assert convert(root, env_for(root), force=True).stages["s"] == "up to date (from dvc.lock)"


def test_a_failed_conversion_removes_the_data_it_restored(tmp_path: Path) -> None:
    """Only tracked data a stage reads is restored (never .gitattributes, .gitmodules a .dvc file names); when
    the conversion then fails, what it restored is removed again and nothing is written."""
    root = tmp_path / "p"
    root.mkdir()
    md5 = _dvc_cache_put(root, b"tracked\n")
    for path in ("data/in.txt", ".gitattributes", ".gitmodules"):
        (root / f"{path.replace('/', '-')}.dvc").write_text(f"outs:\n- path: {path}\n  md5: {md5}\n  hash: md5\n")
    _hand_made_dvc_project(root, [("data/in.txt", md5), ("missing.txt", md5)])
    with pytest.raises(ConfigError, match=r"missing\.txt.*were not written \(the data restored for it was removed"):
        convert(root, env_for(root))
    assert sorted(p.name for p in root.iterdir()) == [".dvc", ".gitattributes.dvc", ".gitmodules.dvc",
                                                       ".shipyard", "data-in.txt.dvc", "dvc.lock", "dvc.yaml",
                                                       "out.txt"]
    _hand_made_dvc_project(root, [("data/in.txt", md5)])
    report = convert(root, env_for(root))
    assert (root / "data" / "in.txt").read_text() == "tracked\n"
    assert not (root / ".gitattributes").exists() and not (root / ".gitmodules").exists()
    assert "not in the workspace" in report.data[".gitattributes"]


def test_a_listing_with_a_path_both_file_and_folder_is_not_carried_over(tmp_path: Path) -> None:
    """A .dir listing holding ``a`` and ``a/b`` is reported, never stored as a manifest `data checkout` refuses."""
    root = tmp_path / "p"
    root.mkdir()
    one = _dvc_cache_put(root, b"one\n")
    md5 = _dvc_cache_put(root, json.dumps([{"md5": one, "relpath": "a"}, {"md5": one, "relpath": "a/b"}]).encode(),
                         ".dir")
    (root / "conflict.dvc").write_text(f"outs:\n- md5: {md5}.dir\n  path: conflict\n  hash: md5\n")
    _hand_made_dvc_project(root, [])
    report = convert(root, env_for(root))
    assert "conflict" not in report.data and "conflict" not in load_lock(root).data
    assert dict(report.not_carried)["conflict"] == "conflict's file list lists a as a file and as a folder"
