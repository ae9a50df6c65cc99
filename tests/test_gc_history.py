"""gc keeps what any shipyard.lock in git history references: real git repositories, branches, tags, amends, stashes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from shipyard.adapters.stores.local import LocalObjectStore
from shipyard.adapters.vcs.history import lock_history
from shipyard.core.artifacts.digest import Digest
from shipyard.core.workspace.add import add
from shipyard.core.workspace.data import Workspace
from shipyard.core.workspace.history import history_roots
from shipyard.ports import NoStateCache
from tests.conftest import cli_env, shipyard

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True,
                          env={**cli_env(), **GIT_ENV})
    return done.stdout


def sy(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return shipyard(*args, env=cli_env(), cwd=root, check=check)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text("/.shipyard\n/data\n")
    (root / "shipyard.yaml").write_text("version: 1\n")  # a project, committed as a user's is
    (root / ".shipyard").mkdir()  # a project: commands outside one refuse to run
    return root


def version(ws: Workspace, text: str) -> Digest:
    """Write data/f.txt, add it (the lock records it); the digest recorded."""
    (ws.root / "data").mkdir(exist_ok=True)
    (ws.root / "data" / "f.txt").write_text(text)
    ((_, entry),) = add(ws, [ws.root / "data" / "f.txt"])
    return entry.digest


def commit(root: Path, message: str, *flags: str) -> None:
    git(root, "add", "shipyard.lock", ".gitignore", "shipyard.yaml")
    git(root, "commit", "-q", "-m", message, *flags)


def test_every_lock_version_in_history_is_found(repo: Path) -> None:
    ws = Workspace(repo, LocalObjectStore(repo / ".shipyard" / "objects"), NoStateCache())
    on_main = version(ws, "main\n")
    commit(repo, "main")
    git(repo, "checkout", "-q", "-b", "feature")
    on_branch = version(ws, "feature branch\n")
    commit(repo, "feature")
    git(repo, "checkout", "-q", "-b", "gone")
    tagged = version(ws, "tagged only\n")
    commit(repo, "tagged")
    git(repo, "tag", "v1")
    git(repo, "checkout", "-q", "main")
    git(repo, "branch", "-q", "-D", "gone")  # reachable from the tag alone
    amended = version(ws, "amended away\n")
    commit(repo, "to be amended")
    version(ws, "after the amend\n")
    commit(repo, "amended", "--amend")  # the first commit lives on in the reflog only
    stashed = version(ws, "stashed\n")
    git(repo, "stash", "-q")
    staged = version(ws, "staged, not committed\n")
    git(repo, "add", "shipyard.lock")

    history = lock_history(repo)
    assert history.repo == str(repo.resolve()) and not history.shallow
    found = history_roots(history)
    assert {on_main, on_branch, tagged, amended, stashed, staged} <= found.digests
    assert found.warnings == []


def test_a_project_in_a_subfolder_reads_its_own_lock(repo: Path) -> None:
    sub = repo / "ml"
    sub.mkdir()
    ws = Workspace(sub, LocalObjectStore(sub / ".shipyard" / "objects"), NoStateCache())
    first = version(ws, "one\n")
    git(repo, "add", "ml/shipyard.lock")
    git(repo, "commit", "-q", "-m", "ml")
    assert first in history_roots(lock_history(sub)).digests


def test_no_repository_means_no_history(tmp_path: Path) -> None:
    history = lock_history(tmp_path)
    assert history.repo is None and history.commits == 0 and list(history.locks) == []


def test_damaged_and_hostile_locks_in_history_are_skipped_with_a_warning(repo: Path) -> None:
    ws = Workspace(repo, LocalObjectStore(repo / ".shipyard" / "objects"), NoStateCache())
    (repo / "shipyard.lock").write_text("data: [unclosed\n")
    commit(repo, "broken")
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True))
    (repo / "shipyard.lock").write_text(laughs)
    commit(repo, "billion laughs")
    (repo / "shipyard.lock").write_text("version: 1\ndata:\n  x:\n    digest: sha256:nothex\n    size: 1\n")
    commit(repo, "bad digest")
    (repo / "shipyard.lock").unlink()
    good = version(ws, "good\n")
    commit(repo, "good")

    found = history_roots(lock_history(repo))
    assert good in found.digests and found.locks == 1
    assert len(found.warnings) == 3 and all("skipped" in w and "\n" not in w for w in found.warnings)

    done = sy(repo, "data", "gc", "--grace", "0s", "--dry-run")  # never a crash: warnings, then the report
    assert done.stdout.count("warning:") == 3 and "nothing to remove" in done.stdout


def test_gc_keeps_data_committed_but_never_pushed(repo: Path) -> None:
    """The observation: `data gc --grace 0s` removed a committed version; restoring it found no copy."""
    (repo / "data").mkdir()
    (repo / "data" / "f.txt").write_text("committed, never pushed\n")
    sy(repo, "data", "add", "data/f.txt")
    commit(repo, "v1")
    (repo / "data" / "f.txt").write_text("second version\n")
    sy(repo, "data", "add", "data/f.txt")
    commit(repo, "v2")
    (repo / "data" / "f.txt").write_text("never committed\n")
    sy(repo, "data", "add", "data/f.txt")
    (repo / "data" / "f.txt").write_text("the current one\n")
    sy(repo, "data", "add", "data/f.txt")

    dry = sy(repo, "data", "gc", "--grace", "0s", "--dry-run").stdout
    doomed = json.loads(sy(repo, "data", "gc", "--grace", "0s", "--dry-run", "--json").stdout)["removed"]
    assert len(doomed) == 1 and f"  {doomed[0].removeprefix('sha256:')[:12]} (--json lists every digest)" in dry
    done = sy(repo, "data", "gc", "--grace", "0s")
    assert "removed 1 object(s)" in done.stdout
    assert "the locks of 2 commit(s) (2 distinct lock version(s))" in done.stdout
    assert "no remote is declared: no other stored copy exists" in done.stdout
    git(repo, "checkout", "-q", "HEAD~1", "--", "shipyard.lock")
    sy(repo, "data", "checkout", "--force")
    assert (repo / "data" / "f.txt").read_text() == "committed, never pushed\n"

    # --workspace-only is the explicit way to drop what only history references
    dry = json.loads(sy(repo, "data", "gc", "--grace", "0s", "--workspace-only", "--dry-run", "--json").stdout)
    assert len(dry["removed"]) == 2 and dry["searched"]["history"].startswith("not searched")


def test_gc_says_whether_the_remote_holds_what_it_removes(repo: Path, tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    (repo / "shipyard.yaml").write_text(f"version: 1\nremotes:\n  origin:\n    url: {remote}\n"
                                        "default_remote: origin\n")
    (repo / "data").mkdir()
    for text in ("one\n", "two\n"):
        (repo / "data" / "f.txt").write_text(text)
        sy(repo, "data", "add", "data/f.txt")
        sy(repo, "data", "push", "-r", "origin")
    done = sy(repo, "data", "gc", "--grace", "0s", "--dry-run", "--remote", "origin")
    assert "would remove 1 object(s)" in done.stdout and f"all are on remote {remote}" in done.stdout


def test_a_shallow_clone_is_refused_unless_workspace_only(repo: Path, tmp_path: Path) -> None:
    ws = Workspace(repo, LocalObjectStore(repo / ".shipyard" / "objects"), NoStateCache())
    for text in ("one\n", "two\n"):
        version(ws, text)
        commit(repo, text)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo}", str(clone)], check=True,
                   capture_output=True)
    assert lock_history(clone).shallow
    (clone / ".shipyard").mkdir()  # not committed (.gitignore); a clone with shipyard.yaml would not need it
    done = sy(clone, "data", "gc", "--dry-run", check=False)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "shallow clone" in done.stderr and "--workspace-only" in done.stderr
    sy(clone, "data", "gc", "--dry-run", "--workspace-only")


def test_outside_git_gc_says_there_is_no_history(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    (root / ".shipyard").mkdir()
    (root / "data" / "f.txt").write_text("x\n")
    (root / "shipyard.yaml").write_text("version: 1\n")
    sy(root, "data", "add", "data/f.txt")
    done = sy(root, "data", "gc", "--dry-run")
    assert "no git repository" in done.stdout


def test_a_long_history_is_read_whole(repo: Path) -> None:
    """2,000 commits, 50 distinct locks: every version found (three git processes, not one per commit)."""
    digests = [Digest.of_bytes(f"v{j}".encode()) for j in range(50)]
    stream = []
    for i in range(2000):
        lock = f"version: 1\ndata:\n  f.txt:\n    digest: {digests[i // 40]}\n    size: 2\n".encode()
        stream.append(f"commit refs/heads/main\ncommitter t <t@example.com> {1700000000 + i} +0000\n"
                      f"data 2\nc\nM 100644 inline shipyard.lock\ndata {len(lock)}\n".encode() + lock + b"\n")
    subprocess.run(["git", "-C", str(repo), "fast-import", "--quiet"], input=b"".join(stream), check=True,
                   capture_output=True)
    history = lock_history(repo)
    found = history_roots(history)
    assert history.commits == 2000 and found.locks == 50 and set(digests) <= found.digests


def test_a_grace_period_without_its_unit_is_refused_before_anything_is_read(repo: Path) -> None:
    """`--grace 24` once meant 24 seconds: gc removed what the user meant to keep for a day."""
    for command in (("data", "gc"), ("store", "gc")):
        done = sy(repo, *command, "--grace", "24", check=False)
        assert done.returncode == 2
        assert done.stderr.strip().splitlines() == [
            "error: invalid value for --grace: '24': give a number with its unit, s, m, h or d (e.g. 24h or 90s); "
            f"see `shipyard {' '.join(command)} --help`"]
    assert sy(repo, "data", "gc", "--grace", "0", "--dry-run").returncode == 0  # 0 is 0 in every unit
def test_a_replaced_commit_still_counts_with_its_own_lock(repo: Path) -> None:
    """`git replace` makes a commit read as another; the lock it really holds must still be kept."""
    ws = Workspace(repo, LocalObjectStore(repo / ".shipyard" / "objects"), NoStateCache())
    first = version(ws, "first\n")
    commit(repo, "first")
    version(ws, "second\n")
    commit(repo, "second")
    empty = git(repo, "hash-object", "-t", "tree", "-w", "/dev/null").strip()  # the empty tree
    stand_in = git(repo, "commit-tree", empty, "-m", "stand-in").strip()
    git(repo, "replace", git(repo, "rev-parse", "HEAD~1").strip(), stand_in)
    assert first in history_roots(lock_history(repo)).digests


def test_git_variables_of_the_caller_do_not_redirect_the_history(repo: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A GIT_DIR left in the environment (a hook, a script) must not make gc read another repository."""
    ws = Workspace(repo, LocalObjectStore(repo / ".shipyard" / "objects"), NoStateCache())
    committed = version(ws, "committed\n")
    commit(repo, "v1")
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    for name, value in (("GIT_DIR", str(other / ".git")), ("GIT_NAMESPACE", "elsewhere")):
        monkeypatch.setenv(name, value)
        assert committed in history_roots(lock_history(repo)).digests, name
        monkeypatch.delenv(name)

    # a project in no repository of its own while GIT_DIR names one: unknown, so gc refuses
    alone = tmp_path / "alone"
    (alone / ".shipyard").mkdir(parents=True)
    done = shipyard("data", "gc", "--dry-run", env=cli_env(GIT_DIR=str(repo / ".git")), cwd=alone, check=False)
    assert done.returncode != 0 and "GIT_DIR is set" in done.stderr and "nothing was removed" in done.stderr


def test_a_lock_committed_before_the_project_moved_still_counts(tmp_path: Path) -> None:
    """A project folder renamed in git (`git mv old new`): the locks committed under old/ pin data too."""
    top = tmp_path / "mono"
    (top / "old").mkdir(parents=True)
    git(top, "init", "-q", "-b", "main")
    ws = Workspace(top / "old", LocalObjectStore(tmp_path / "store"), NoStateCache())
    first = version(ws, "under the old name\n")
    git(top, "add", "old/shipyard.lock")
    git(top, "commit", "-q", "-m", "v0")
    version(ws, "still under the old name\n")
    git(top, "commit", "-q", "-am", "v0.1")  # so the first lock exists only at old/shipyard.lock
    git(top, "mv", "old", "new")
    git(top, "commit", "-q", "-m", "renamed")
    moved = Workspace(top / "new", LocalObjectStore(tmp_path / "store"), NoStateCache())
    second = version(moved, "under the new name\n")
    git(top, "add", "new/shipyard.lock")
    git(top, "commit", "-q", "-m", "v1")
    found = history_roots(lock_history(top / "new")).digests
    assert {first, second} <= found


@pytest.mark.parametrize("setting", ["log.showRoot=false", "log.showSignature=true", "log.follow=true"])
def test_the_users_git_configuration_does_not_hide_a_lock(repo: Path, monkeypatch: pytest.MonkeyPatch,
                                                          setting: str) -> None:
    """log.showRoot=false hid the root commit's lock (its data was removed); log.follow made git fail."""
    ws = Workspace(repo, LocalObjectStore(repo / ".shipyard" / "objects"), NoStateCache())
    first = version(ws, "in the root commit only\n")
    commit(repo, "root")
    version(ws, "second\n")
    commit(repo, "second")
    key, value = setting.split("=")
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", key)
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", value)
    assert first in history_roots(lock_history(repo)).digests


def test_a_signed_commit_is_read_with_log_show_signature(repo: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """With log.showSignature, git printed the signature check into the commit list: gc refused to run."""
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (tmp_path / "allowed").write_text(f"* {' '.join(key.with_suffix('.pub').read_text().split()[:2])}\n")
    git(repo, "config", "gpg.format", "ssh")
    git(repo, "config", "user.signingkey", str(key.with_suffix(".pub")))
    git(repo, "config", "gpg.ssh.allowedSignersFile", str(tmp_path / "allowed"))
    ws = Workspace(repo, LocalObjectStore(repo / ".shipyard" / "objects"), NoStateCache())
    version(ws, "first\n")
    commit(repo, "first")
    signed = version(ws, "signed\n")
    commit(repo, "signed", "-S")
    version(ws, "later\n")
    commit(repo, "later")
    git(repo, "config", "log.showSignature", "true")
    assert signed in history_roots(lock_history(repo)).digests


def test_a_lock_that_was_a_link_then_a_file_counts(repo: Path) -> None:
    """A type change (link to file) is neither an addition nor a modification: its lock was skipped."""
    (repo / "shipyard.lock").symlink_to("elsewhere")
    commit(repo, "a link")
    (repo / "shipyard.lock").unlink()
    ws = Workspace(repo, LocalObjectStore(repo / ".shipyard" / "objects"), NoStateCache())
    typed = version(ws, "a file again\n")
    commit(repo, "a file")
    version(ws, "later\n")
    commit(repo, "later")
    assert typed in history_roots(lock_history(repo)).digests
