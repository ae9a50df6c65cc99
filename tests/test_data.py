"""Versioned data from the command line: init, add, status, checkout, push and pull."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import cli_env, make_bucket, shipyard


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "data" / "raw").mkdir(parents=True)
    for i in range(5):
        (root / "data" / "raw" / f"part-{i}.csv").write_text(f"id,value\n{i},{i * i}\n")
    (root / "data" / "labels.txt").write_text("a\nb\n")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".shipyard").mkdir()  # a project (what `shipyard init` makes); test_init runs init itself
    return root


def sy(proj: Path, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    return shipyard(*args, env=cli_env(**env), cwd=proj, check=check)


def status(proj: Path) -> dict[str, dict[str, object]]:
    return {s["path"]: s for s in json.loads(sy(proj, "data", "status", "--json").stdout)}


def test_init_writes_a_valid_annotated_config(proj: Path) -> None:
    sy(proj, "init")
    text = (proj / "shipyard.yaml").read_text()
    assert text.startswith("#") and "stages:" in text
    assert "/.shipyard" in (proj / ".gitignore").read_text()
    again = sy(proj, "init", check=False)
    assert again.returncode == 4 and "already exists" in again.stderr
    assert (proj / "shipyard.yaml").read_text() == text


def test_add_records_digests_and_status_tells_what_changed(proj: Path) -> None:
    sy(proj, "init")
    sy(proj, "data", "add", "data/raw", "data/labels.txt")
    lock = (proj / "shipyard.lock").read_text()
    assert "data/raw:" in lock and "files: 5" in lock and "data/labels.txt:" in lock
    assert "/data/raw" in (proj / ".gitignore").read_text()
    assert {s["state"] for s in status(proj).values()} == {"unchanged"}

    (proj / "data" / "raw" / "part-1.csv").write_text("changed\n")
    (proj / "data" / "raw" / "part-9.csv").write_text("new\n")
    (proj / "data" / "raw" / "part-2.csv").unlink()
    (proj / "data" / "labels.txt").unlink()
    st = status(proj)
    assert st["data/raw"]["modified"] == ["part-1.csv"]
    assert st["data/raw"]["added"] == ["part-9.csv"]
    assert st["data/raw"]["deleted"] == ["part-2.csv"]
    assert st["data/labels.txt"]["state"] == "missing"


def test_checkout_switches_versions_with_git_and_never_loses_changes(proj: Path) -> None:
    git = lambda *a: subprocess.run(["git", "-C", str(proj), *a], check=True, capture_output=True)  # noqa: E731
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    sy(proj, "data", "add", "data/raw")
    git("add", "-A")
    git("commit", "-qm", "v1")
    (proj / "data" / "raw" / "part-0.csv").write_text("version 2\n")
    sy(proj, "data", "add", "data/raw")
    git("commit", "-qam", "v2")

    git("checkout", "-q", "HEAD~1")
    assert status(proj)["data/raw"]["modified"] == ["part-0.csv"]
    sy(proj, "data", "checkout")  # v2's content is in the store: safe to replace
    assert (proj / "data" / "raw" / "part-0.csv").read_text() == "id,value\n0,0\n"

    (proj / "data" / "raw" / "part-3.csv").write_text("my unsaved edit\n")
    (proj / "data" / "raw" / "extra.csv").write_text("my new file\n")
    git("checkout", "-q", "-")
    refused = sy(proj, "data", "checkout", check=False)
    assert refused.returncode == 4
    assert "data/raw/extra.csv, data/raw/part-3.csv" in refused.stderr and "--force" in refused.stderr
    assert (proj / "data" / "raw" / "part-3.csv").read_text() == "my unsaved edit\n"  # nothing changed
    assert (proj / "data" / "raw" / "part-0.csv").read_text() == "id,value\n0,0\n"

    sy(proj, "data", "checkout", "--force")
    assert (proj / "data" / "raw" / "part-0.csv").read_text() == "version 2\n"
    assert not (proj / "data" / "raw" / "extra.csv").exists()


@pytest.mark.parametrize("kind", ["folder", "s3"])
def test_push_then_pull_into_a_fresh_clone(proj: Path, tmp_path: Path, kind: str,
                                           request: pytest.FixtureRequest) -> None:
    if kind == "folder":
        (tmp_path / "remote").mkdir()  # a folder remote is made by the user, never by a typo
        remote = f"remotes:\n  origin:\n    url: {tmp_path / 'remote'}\n"
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        remote = f"remotes:\n  origin:\n    url: s3://{make_bucket(endpoint)}/p\n    endpoint_url: {endpoint}\n"
    (proj / "shipyard.yaml").write_text(f"version: 1\n{remote}default_remote: origin\n")
    sy(proj, "data", "add", "data/raw")
    pushed = json.loads(sy(proj, "data", "push", "--json").stdout)
    assert pushed == {"objects": 6, "transferred": 6, "replaced": 0, "verified": False}
    assert json.loads(sy(proj, "data", "push", "--json").stdout)["transferred"] == 0

    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("shipyard.yaml", "shipyard.lock"):
        (clone / name).write_text((proj / name).read_text())
    # nothing in the clone's store: status points at `data pull`, never at a checkout that cannot work
    told = sy(clone, "data", "status").stdout
    assert "shipyard data pull" in told and "data checkout" not in told, told
    st = status(clone)["data/raw"]
    assert (st["state"], st["in_store"]) == ("missing", False)
    pulled = json.loads(sy(clone, "data", "pull", "--json").stdout)
    assert pulled["transferred"] == 6 and pulled["written"] == 5
    for f in (proj / "data" / "raw").iterdir():
        assert (clone / "data" / "raw" / f.name).read_bytes() == f.read_bytes()
    assert status(clone)["data/raw"]["state"] == "unchanged"
    (clone / "data" / "raw" / "part-0.csv").unlink()
    (clone / "data" / "raw").rename(clone / "elsewhere")
    assert status(clone)["data/raw"]["in_store"] is True  # now the store has it: checkout is the fix
    assert "shipyard data checkout data/raw" in sy(clone, "data", "status").stdout


TRAIN = "version: 1\nstages:\n  train:\n    cmd: python t.py\n"


@pytest.mark.parametrize(("yaml_text", "message"), [
    (TRAIN + "    outz: [m]\n", "shipyard.yaml:5: unknown key 'outz' in stages.train (did you mean 'outs'?)"),
    (TRAIN + "    deps: 3\n", "shipyard.yaml:5: stages.train.deps: should be a list"),
    ("version: 1\nstages:\n  train:\n    deps: [a]\n", "shipyard.yaml:3: stages.train: missing key 'cmd'"),
    ("version: 1\nremotes: [\n", "shipyard.yaml:3: not valid YAML"),
    ("version: 2\n", "shipyard.yaml:1: version"),
])
def test_config_errors_name_file_line_and_key(proj: Path, yaml_text: str, message: str) -> None:
    (proj / "shipyard.yaml").write_text(yaml_text)
    done = sy(proj, "data", "push", check=False)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_data_outside_the_project_is_refused(proj: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere.txt").write_text("x")
    (proj / "shipyard.yaml").write_text("version: 1\n")
    done = sy(proj, "data", "add", str(tmp_path / "elsewhere.txt"), check=False)
    assert done.returncode == 2 and "outside the project" in done.stderr
    assert not (proj / "shipyard.lock").exists()


def test_data_gc_keeps_what_the_lock_references(proj: Path) -> None:
    sy(proj, "data", "add", "data/raw")
    (proj / "data" / "raw" / "part-0.csv").write_text("second version\n")
    sy(proj, "data", "add", "data/raw")  # the first version is now referenced by nothing
    # a data-only project: no run or model version, and no --allow-empty-db needed (no commit pins the first version)
    dry = json.loads(sy(proj, "data", "gc", "--grace", "0s", "--dry-run", "--json").stdout)
    assert len(dry["removed"]) == 2  # the old manifest and the old part-0.csv
    sy(proj, "data", "gc", "--grace", "0s")
    assert {s["state"] for s in status(proj).values()} == {"unchanged"}
    (proj / "data" / "raw" / "part-1.csv").unlink()
    sy(proj, "data", "checkout")  # everything the lock needs is still there
    assert (proj / "data" / "raw" / "part-1.csv").read_text() == "id,value\n1,1\n"


def test_data_gc_stops_with_one_line_when_a_manifest_is_damaged(proj: Path) -> None:
    sy(proj, "data", "add", "data/raw")
    digest = (proj / "shipyard.lock").read_text().split("digest: sha256:")[1].split()[0]
    manifest = proj / ".shipyard" / "objects" / "sha256" / digest[:2] / digest[2:]
    manifest.chmod(0o644)
    manifest.write_bytes(manifest.read_bytes().replace(b'"entries":[', b'"entries":[,', 1))
    before = sorted(p.name for p in (proj / ".shipyard" / "objects" / "sha256").rglob("*") if p.is_file())
    done = sy(proj, "data", "gc", "--grace", "0s", check=False)
    assert done.returncode == 5 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"manifest sha256:{digest} is corrupt" in done.stderr
    assert sorted(p.name for p in (proj / ".shipyard" / "objects" / "sha256").rglob("*") if p.is_file()) == before
