"""Promotion is a git commit: ``promote`` and ``rollback`` push to a real bare repository served by ``git daemon``
on 127.0.0.1, and the environment's alias moves only once the push succeeded."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from sklearn.dummy import DummyClassifier

import shipyard
from shipyard.adapters.deploy.gitops import GitOpsRepo, Published, check_branch, check_url, redact, redact_text
from shipyard.config import Settings
from shipyard.core.deploy import promotion as p
from shipyard.errors import (
    BackendUnavailableError,
    ConfigError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PolicyDeniedError,
    ShipyardError,
)
from shipyard.wiring import Services, build
from shipyard.wiring.deploy import render_environment
from shipyard.wiring.gitops import promote, rollback
from tests.conftest import cli_env, free_port
from tests.conftest import shipyard as run_cli

DIGESTS = {v: f"sha256:{(str(v) * 64)[:64]}" for v in range(1, 5)}


def image(v: int) -> str:
    return f"registry.example.com/team/m@{DIGESTS[v]}"


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=60).stdout


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``git daemon --enable=receive-pack`` on a free port of 127.0.0.1: (git://127.0.0.1:PORT, its base path)."""
    base = tmp_path_factory.mktemp("git")
    port = free_port()
    pid = base / "daemon.pid"
    subprocess.run(["git", "daemon", f"--base-path={base}", "--export-all", "--enable=receive-pack", "--reuseaddr",
                    "--listen=127.0.0.1", f"--port={port}", f"--pid-file={pid}", "--detach"], check=True, timeout=30)
    deadline = time.monotonic() + 30
    while True:  # --detach returns before the daemon listens
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    yield f"git://127.0.0.1:{port}", base
    os.kill(int(pid.read_text()), signal.SIGTERM)


def bare(daemon: tuple[str, Path]) -> str:
    """A new, empty bare repository the daemon serves: its git:// URL."""
    url, base = daemon
    name = f"{uuid.uuid4().hex[:10]}.git"
    git("init", "-q", "--bare", "-b", "main", str(base / name))
    return f"{url}/{name}"


def make_project(root: Path, repo: str) -> Settings:
    root.mkdir(parents=True)
    (root / "shipyard.yaml").write_text(f"deploy:\n  repo: {repo}\n  environments:\n    staging: {{}}\n"
                                        "    production:\n      alias: prod\n")
    home = root / ".shipyard"
    return Settings(home=home, db_url=f"sqlite:///{root / 'meta.db'}", store_path=home / "objects",
                    actor="alice@laptop", root=root)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("saved") / "m"
    shipyard.save_model(DummyClassifier().fit([[0], [1]], [0, 1]), folder)
    return folder


@pytest.fixture
def svc(tmp_path: Path, daemon: tuple[str, Path], saved: Path) -> Iterator[Services]:
    """A project whose deploy.repo is a fresh repository on the daemon, with m@1..3, each built and pushed."""
    services = build(make_project(tmp_path / "proj", bare(daemon)), tmp_path / "proj")
    for v in (1, 2, 3):
        mv = services.registry.register("m", saved)
        services.registry.record_result(mv, "build", {  # as `shipyard build --push` records it
            "image": f"shipyard/m:{v}", "image_id": f"sha256:{str(v) * 64}", "engine": "docker",
            "pushed": image(v)}, f"image shipyard/m:{v}, pushed {image(v)}")
    yield services
    services.close()


def clone(url: str, where: Path) -> Path:
    if where.exists():
        git("-C", str(where), "pull", "-q", "--ff-only")
    else:
        git("clone", "-q", url, str(where))
    return where


def overlay_text(folder: Path, env: str = "staging") -> str:
    """The environment as Argo CD applies it: its overlay built by ``kubectl kustomize``."""
    return git_free("kubectl", "kustomize", str(folder / "deploy" / "overlays" / env))


def git_free(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout


def alias_events(svc: Services, alias: str = "staging") -> list[str]:
    return [f"{e.old}->{e.new}: {e.reason}" for e in svc.registry.history("m")
            if e.action == "alias.set" and e.name == alias]


# --- the whole path, against the daemon -----------------------------------------------------------------------

def test_promote_pushes_a_commit_a_fresh_clone_shows_then_moves_the_alias(svc: Services, tmp_path: Path) -> None:
    done = promote(svc, "m@2", "staging", reason="weekly retrain")
    assert done.commit and done.alias_moved and done.alias_was is None
    work = clone(done.repo, tmp_path / "c")
    assert git("rev-parse", "HEAD", cwd=work).strip() == done.commit
    message = git("log", "-1", "--format=%B", cwd=work)
    trailers = dict(line.split(": ", 1) for line in message.splitlines() if line.startswith("Shipyard-"))
    assert message.startswith("promote m@2 to staging\n\nweekly retrain\n")
    assert trailers["Shipyard-Model"] == "m" and trailers["Shipyard-Version"] == "2"
    assert trailers["Shipyard-Image"] == image(2) and trailers["Shipyard-Actor"] == "alice@laptop"
    assert trailers["Shipyard-Record"].startswith("sha256:")
    assert git("log", "-1", "--format=%an <%ae>", cwd=work).strip() == "alice@laptop <alice@laptop>"
    assert f"image: {image(2)}" in overlay_text(work)
    application = (work / "deploy" / "argocd" / "staging.yaml").read_text()
    assert "kind: Application" in application and f"repoURL: {done.repo}" in application
    assert svc.registry.resolve("m@staging").version == 2
    [event] = alias_events(svc)
    assert event == f"None->2: promote to staging: commit {done.commit}: weekly retrain"

    again = promote(svc, "m@2", "staging")  # nothing changes: no empty commit, no alias event
    assert again.commit is None and not again.alias_moved
    assert git("ls-remote", done.repo, "refs/heads/main").split()[0] == done.commit
    assert len(alias_events(svc)) == 1


def test_a_failed_push_leaves_the_alias_where_it_was(svc: Services, tmp_path: Path, daemon: tuple[str, Path]
                                                     ) -> None:
    first = promote(svc, "m@1", "staging")
    base = daemon[1]
    hook = base / first.repo.rsplit("/", 1)[1] / "hooks" / "pre-receive"  # the server refuses every push now
    hook.write_text("#!/bin/sh\necho 'protected branch: changes go through review' >&2\nexit 1\n")
    hook.chmod(0o755)
    with pytest.raises(ConflictError) as refused:
        promote(svc, "m@2", "staging")
    assert len(str(refused.value).splitlines()) == 1 and "refused the push to main" in str(refused.value)
    assert "(protected branch: changes go through review: pre-receive hook declined)" in str(refused.value)
    assert "--branch" in str(refused.value)
    assert svc.registry.resolve("m@staging").version == 1 and len(alias_events(svc)) == 1
    hook.unlink()

    port = free_port()  # nothing listens there: the daemon is down
    (svc.settings.project_root / "shipyard.yaml").write_text(
        f"deploy:\n  repo: git://127.0.0.1:{port}/gone.git\n")
    with pytest.raises(BackendUnavailableError) as down:
        promote(svc, "m@2", "staging")
    assert len(str(down.value).splitlines()) == 1 and "cannot reach the GitOps repository" in str(down.value)
    assert "Connection refused" in str(down.value)
    assert svc.registry.resolve("m@staging").version == 1 and len(alias_events(svc)) == 1


def test_a_damaged_clone_is_made_again(svc: Services) -> None:
    promote(svc, "m@1", "staging")
    [index] = (svc.settings.home / "gitops").glob("*/.git/index")
    index.write_bytes(b"not an index")  # an interrupted git, a full disk
    assert promote(svc, "m@2", "staging").alias_moved


def test_a_review_branch_is_pushed_and_the_alias_stays(svc: Services, tmp_path: Path) -> None:
    promote(svc, "m@1", "production")
    done = promote(svc, "m@2", "production", branch="review/m-2")
    assert done.review and done.commit and not done.alias_moved
    heads = git("ls-remote", "--heads", done.repo)
    assert f"{done.commit}\trefs/heads/review/m-2" in heads
    assert svc.registry.resolve("m@prod").version == 1  # production's alias is `prod` (shipyard.yaml)


def test_rollback_returns_to_the_previous_version_and_both_are_in_models_history(svc: Services,
                                                                                tmp_path: Path) -> None:
    promote(svc, "m@1", "staging")
    promote(svc, "m@2", "staging", image=image(4))  # deployed with another image than its build's
    promote(svc, "m@3", "staging")
    back = rollback(svc, "staging", reason="p99 doubled")
    assert (back.version, back.reverts, back.image) == (2, "m@3", image(4))  # the image it ran with then
    work = clone(back.repo, tmp_path / "c")
    assert git("log", "-1", "--format=%s", cwd=work).strip() == "rollback staging to m@2 (from m@3)"
    assert "Shipyard-Reverts: m@3" in git("log", "-1", "--format=%B", cwd=work)
    assert image(4) in overlay_text(work)
    assert rollback(svc, "staging", "m").version == 1  # twice: two versions back, not a flip to 3
    with pytest.raises(NotFoundError, match="no earlier promoted version"):
        rollback(svc, "staging")
    env = cli_env(SHIPYARD_HOME=str(svc.settings.home), SHIPYARD_DB_URL=svc.settings.db_url)
    history = json.loads(run_cli("models", "history", "m", "--json", env=env).stdout)
    moves = [(e["old"], e["new"], e["reason"].split(":")[0]) for e in history if e["action"] == "alias.set"]
    assert moves == [(None, "1", "promote to staging"), ("1", "2", "promote to staging"),
                     ("2", "3", "promote to staging"), ("3", "2", "rollback of staging from m@3"),
                     ("2", "1", "rollback of staging from m@2")]
    assert all("commit " in e["reason"] for e in history if e["action"] == "alias.set")


def test_two_promotions_at_once_both_land(svc: Services, tmp_path: Path) -> None:
    other = build(svc.settings, svc.settings.project_root)
    errors: list[BaseException] = []

    def go(s: Services, ref: str, env: str) -> None:
        try:
            promote(s, ref, env)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(svc, "m@1", "staging")),
               threading.Thread(target=go, args=(other, "m@2", "production"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    assert not errors
    work = clone(promote(svc, "m@1", "staging").repo, tmp_path / "c")
    subjects = git("log", "--format=%s", cwd=work).splitlines()
    assert sorted(subjects) == ["promote m@1 to staging", "promote m@2 to production"]
    assert (svc.registry.resolve("m@staging").version, svc.registry.resolve("m@prod").version) == (1, 2)


def test_clones_racing_from_two_places_retry_and_lose_no_commit(daemon: tuple[str, Path], tmp_path: Path) -> None:
    url = bare(daemon)
    served = daemon[1] / url.rsplit("/", 1)[1]
    repos = [GitOpsRepo(url, tmp_path / f"w{i}") for i in range(2)]  # two machines: two clones, two locks
    on_server: list[bool] = []

    def pushed(done: Published) -> None:  # what runs after the push (the alias move) sees it on the server
        on_server.append(subprocess.run(["git", "-C", str(served), "cat-file", "-e", f"{done.commit}^{{commit}}"],
                                        check=False).returncode == 0)

    def go(i: int) -> None:
        for n in range(3):
            repos[i].publish(lambda d, n=n: put(d, f"e{i}.yaml", f"n: {n}\n"), f"c{i}-{n}", "bot",
                             on_pushed=pushed)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    work = clone(url, tmp_path / "c")
    assert sorted(git("log", "--format=%s", cwd=work).split()) == [f"c{i}-{n}" for i in range(2) for n in range(3)]
    assert on_server == [True] * 6


def put(folder: Path, name: str, text: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return [name]


@pytest.mark.parametrize("link", ["deploy", "deploy/overlays"])
def test_a_link_in_the_repository_is_never_written_through(svc: Services, tmp_path: Path, link: str) -> None:
    """The repository's content is someone else's: a link where the GitOps folder (or a folder in it) goes
    is refused, and nothing is written where it points."""
    url = promote(svc, "m@1", "staging").repo
    outside = tmp_path / "outside"
    outside.mkdir()
    seed = clone(url, tmp_path / "seed")
    git("rm", "-rq", link, cwd=seed)
    (seed / link).symlink_to(outside)
    git("add", "-A", cwd=seed)
    git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qm", "a link", cwd=seed)
    git("push", "-q", "origin", "HEAD:main", cwd=seed)
    with pytest.raises(ShipyardError, match="link"):
        promote(svc, "m@2", "staging")
    assert list(outside.iterdir()) == []
    assert svc.registry.resolve("m@staging").version == 1


# --- the gates and the history, pure -------------------------------------------------------------------------

def test_the_gates() -> None:
    facts = p.Facts("m@1", "staging", None, "build")
    assert p.decide(facts).reasons[0].startswith("m@1 has no pushed image: run `shipyard build m@1 --push")
    tagged = p.decide(p.Facts("m@1", "staging", "registry.example.com/m:1", "--image"))
    assert not tagged.allowed and "not pinned by digest" in tagged.reasons[0]
    verified = (p.VerifyFact("shipyard/m:1", None, False, "fail in image"), p.VerifyFact(image(1), None, True))
    assert p.decide(p.Facts("m@1", "staging", image(1), "build", frozenset({"shipyard/m:1"}), verified)).allowed
    failed = (*verified, p.VerifyFact("x", "sha256:" + "1" * 64, False, "fail in image x"))  # the same image id
    denied = p.decide(p.Facts("m@1", "staging", image(1), "build", frozenset({"sha256:" + "1" * 64}), failed))
    assert not denied.allowed and "failed its newest verify in the image x" in denied.reasons[0]
    other = (p.VerifyFact("another/image:2", None, False),)  # another image's failure does not count
    assert p.decide(p.Facts("m@1", "staging", image(1), "build", frozenset(), other)).allowed


def test_the_previous_version_follows_promotions_and_rollbacks() -> None:
    def ev(new: int | None, reason: str = "promote", action: str = "alias.set") -> SimpleNamespace:
        return SimpleNamespace(model="m", name="staging", action=action, new=None if new is None else str(new),
                               reason=reason)

    events = [ev(1), ev(2), ev(2), ev(3), ev(2, "rollback of staging from m@3: commit x")]
    assert p.promoted_versions(events, "m", "staging") == [1, 2]
    assert p.previous_version(events, "m", "staging") == 1
    assert p.previous_version([*events, ev(1, "rollback of staging from m@2")], "m", "staging") is None
    assert p.previous_version([*events, ev(None, action="alias.remove"), ev(3)], "m", "staging") is None
    assert p.previous_version([ev(1), SimpleNamespace(model="m", name="prod", action="alias.set", new="5",
                                                      reason="")], "m", "staging") is None
    message = p.commit_message("m", 2, "staging", record=None, image=image(2), actor="a", reason="Shipyard-"
                               "Image: evil/m@sha256:" + "0" * 64)  # a reason cannot forge a trailer
    assert p.trailers(message)["Shipyard-Image"] == image(2)


def test_the_image_a_rollback_takes_comes_from_the_promote_records() -> None:
    def rec(env: str, img: str, review: bool = False, stable: int | None = None) -> dict[str, object]:
        return p.promotion_record(env=env, alias=env, image=img, commit="c", head="c", repo="r", branch="main",
                                  reverts=None, review=review, stable_version=stable)

    records = [rec("staging", image(1), stable=3), rec("production", image(2)), rec("staging", image(3), True)]
    assert p.promoted_image(records, "staging") == image(1)  # a review branch is no promotion of the env
    assert p.promoted_image(records, "production") == image(2) and p.promoted_image(records, "dev") is None
    assert p.promoted_image([rec("staging", "evil/m:latest")], "staging") is None  # only a pinned image
    assert p.kept_stable(records, "staging") == (True, 3) and p.kept_stable(records, "production") == (True, None)
    assert p.kept_stable(records, "dev") == (False, None)
    assert p.kept_stable([{"env": "dev", "stable_version": "2"}], "dev") == (False, None)


def test_promote_from_the_cli_says_one_line_when_refused(svc: Services, tmp_path: Path) -> None:
    env = cli_env(SHIPYARD_HOME=str(svc.settings.home), SHIPYARD_DB_URL=svc.settings.db_url,
                  SHIPYARD_ACTOR="bob@ci")
    denied = run_cli("promote", "m@1", "--env", "staging", "--image", "registry.example.com/m:latest", env=env,
                     cwd=svc.settings.project_root, check=False)
    assert denied.returncode == PolicyDeniedError.exit_code
    assert denied.stderr.count("\n") == 1 and "not pinned by digest" in denied.stderr
    done = run_cli("promote", "m@1", "--env", "staging", env=env, cwd=svc.settings.project_root)
    assert "promoted m@1 to staging: commit " in done.stdout and "alias  m@staging -> 1" in done.stdout
    again = json.loads(run_cli("promote", "m@1", "--env", "staging", "--json", env=env,
                               cwd=svc.settings.project_root).stdout)
    assert (again["changed"], again["alias_moved"], again["gates"]["allowed"]) == (False, False, True)


def test_without_deploy_repo_the_projects_origin_is_used_and_its_working_tree_left_alone(
        daemon: tuple[str, Path], tmp_path: Path, saved: Path) -> None:
    url = bare(daemon)
    work = clone(url, tmp_path / "app")
    (work / "README").write_text("app\n")
    git("add", "README", cwd=work)
    git("-c", "user.name=u", "-c", "user.email=u@u", "commit", "-qm", "init", cwd=work)
    git("push", "-q", "origin", "HEAD:main", cwd=work)
    settings = make_project(work / "ml", url)
    (work / "ml" / "shipyard.yaml").write_text("deploy: {}\n")
    (work / "ml" / "notes.txt").write_text("uncommitted\n")
    git("add", "ml/notes.txt", cwd=work)  # something staged in the user's index
    (work / ".git" / "info" / "exclude").write_text("ml/.shipyard/\nml/meta.db\n")  # Shipyard's own data
    before = (git("status", "--porcelain", cwd=work), git("rev-parse", "HEAD", cwd=work))
    svc = build(settings, work / "ml")
    try:
        mv = svc.registry.register("m", saved)
        done = promote(svc, "m@1", "staging", image=image(1))
    finally:
        svc.close()
    assert mv.version == 1 and done.repo == url
    assert (git("status", "--porcelain", cwd=work), git("rev-parse", "HEAD", cwd=work)) == before
    git("fetch", "-q", cwd=work)
    assert "ml/deploy/overlays/staging/kustomization.yaml" in git("ls-tree", "-r", "--name-only", "origin/main",
                                                                  cwd=work)
    assert "path: ml/deploy/overlays/staging" in git("show", "origin/main:ml/deploy/argocd/staging.yaml", cwd=work)


# --- branch names, transports, credentials -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["refs/heads/main", "HEAD", "FETCH_HEAD", "@", "@x", "heads/main", "tags/v1",
                                  "remotes/origin/main", "a/.b", ".a", "x.lock/y", "a..b", "a b", "-x", "a/",
                                  "0123456789abcdef0123456789abcdef01234567"])
def test_a_branch_name_git_could_read_as_another_ref_is_refused(name: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        check_branch(name)
    assert len(str(refused.value).splitlines()) == 1 and "--branch" in str(refused.value)


def test_plain_branch_names_are_accepted() -> None:
    for name in ("main", "review/m-2", "release-1.2", "user/HEADline", "ahead"):
        assert check_branch(name) == name


def test_promote_refuses_a_ref_as_branch_before_pushing(svc: Services) -> None:
    for name in ("refs/heads/main", "HEAD"):
        with pytest.raises(InvalidInputError, match="reads as another git ref"):
            promote(svc, "m@2", "staging", branch=name)
    repo = (svc.settings.project_root / "shipyard.yaml").read_text().split("repo: ", 1)[1].split()[0]
    assert git("ls-remote", repo) == ""  # nothing pushed


def test_a_remote_ref_that_makes_the_push_ambiguous_is_named(svc: Services, daemon: tuple[str, Path]) -> None:
    first = promote(svc, "m@1", "staging")
    served = daemon[1] / first.repo.rsplit("/", 1)[1]  # a hostile (or damaged) repository
    git("-C", str(served), "update-ref", "refs/heads/refs/heads/main", str(first.commit))
    with pytest.raises(ConflictError) as refused:
        promote(svc, "m@2", "staging")
    said = str(refused.value)
    assert len(said.splitlines()) == 1 and "holds refs/heads/refs/heads/main" in said
    assert "--delete refs/heads/refs/heads/main" in said and "--branch" not in said
    assert svc.registry.resolve("m@staging").version == 1


@pytest.mark.parametrize("url", ["fd::17", "ext::sh -c touch% /tmp/pwned", "foo::bar", "FD::3", "svn://h/r",
                                 "rsync://h/r", "myhelper://x", "-uhost:x", "a b:c"])
def test_only_known_transports_are_allowed(url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_url(url)
    assert "is not a git URL Shipyard uses" in str(refused.value)


@pytest.mark.parametrize("url", ["https://git.example.com/t/g.git", "http://127.0.0.1:8080/g.git",
                                 "ssh://git@host:22/t/g.git", "git://127.0.0.1:9418/g.git", "file:///tmp/g.git",
                                 "git@github.com:team/gitops.git", "host:path/g.git", "/srv/git/g.git",
                                 "../gitops.git", "./g", "git+ssh://git@host/g.git"])
def test_the_usual_git_urls_are_accepted(url: str) -> None:
    assert check_url(url) == url


def test_credentials_in_a_url_are_removed_wherever_it_is_shown() -> None:
    assert redact("https://gitlab-ci-token:SECRET123@gitlab.example.com/g/p.git") == "https://gitlab.example.com/g/p.git"
    assert redact("http://u@h/g.git") == "http://h/g.git"
    assert redact("ssh://git:pw@h/g.git") == "ssh://git@h/g.git"  # the ssh user stays: Argo CD needs it
    assert redact("https://a@b:p@ss@h/g.git") == "https://h/g.git"  # to the authority's last '@'
    assert redact("https://ghp_TOKEN@github.com/t/g.git") == "https://github.com/t/g.git"
    for kept in ("ssh://git@h/g.git", "git@github.com:t/g.git", "/srv/g.git", "https://h/g.git"):
        assert redact(kept) == kept
    said = "fatal: unable to access 'http://u:SECRET123@h/g.git/': and https://x:y@other/ too, ssh://git@h/x"
    assert redact_text(said, "http://u:SECRET123@h/g.git") == redact_text(said, "") == \
        "fatal: unable to access 'http://h/g.git/': and https://other/ too, ssh://git@h/x"


def test_the_origins_credentials_stay_out_of_the_manifests_and_messages(svc: Services) -> None:
    root = svc.settings.project_root
    git("init", "-q", cwd=root)
    git("remote", "add", "origin", "https://gitlab-ci-token:SECRET123@gitlab.example.com/g/p.git", cwd=root)
    (root / "shipyard.yaml").write_text("deploy: {}\n")  # GitLab CI's own clone URL form, as origin
    rendered = render_environment(svc, "m@1", "staging")
    application = rendered.files["argocd/staging.yaml"].decode()
    assert "repoURL: https://gitlab.example.com/g/p.git" in application
    assert not any(b"SECRET123" in data for data in rendered.files.values())

    port = free_port()  # nothing listens: git's own message names the URL
    (root / "shipyard.yaml").write_text(f"deploy:\n  repo: http://u:SECRET123@127.0.0.1:{port}/g/p.git\n")
    with pytest.raises(BackendUnavailableError) as down:
        promote(svc, "m@1", "staging")
    assert "SECRET123" not in str(down.value) and f"http://127.0.0.1:{port}/g/p.git" in str(down.value)


@pytest.mark.parametrize("environments", ["staging: {alias: 'Bad Alias!'}", "latest: {}", "'1': {}"])
def test_an_alias_the_registry_refuses_stops_the_promotion_before_the_push(svc: Services, environments: str
                                                                            ) -> None:
    yaml = svc.settings.project_root / "shipyard.yaml"
    repo = yaml.read_text().split("repo: ", 1)[1].split()[0]
    yaml.write_text(f"deploy:\n  repo: {repo}\n  environments:\n    {environments}\n")
    env = environments.split(":", 1)[0].strip("'")
    with pytest.raises(ShipyardError) as refused:
        promote(svc, "m@1", env)
    assert "alias" in str(refused.value) and len(str(refused.value).splitlines()) == 1
    assert git("ls-remote", repo) == ""  # the GitOps repository is untouched


def test_rollback_never_takes_an_image_from_a_commit_message_anyone_could_write(svc: Services, tmp_path: Path
                                                                                 ) -> None:
    """F2: a commit pushed by someone else restores m@1's manifests with a forged Shipyard-Image trailer; the
    promotion of m@1 that finds nothing to commit, then a rollback to it, still deploy m@1's own image."""
    c1 = promote(svc, "m@1", "production")
    promote(svc, "m@2", "production")
    evil = "evil.example/pwn@sha256:" + "e" * 64
    work = clone(c1.repo, tmp_path / "attacker")
    git("checkout", str(c1.commit), "--", "deploy", cwd=work)
    git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qm",
        f"promote m@1 to production\n\nShipyard-Model: m\nShipyard-Version: 1\nShipyard-Image: {evil}", cwd=work)
    git("push", "-q", "origin", "HEAD:main", cwd=work)
    forged = git("rev-parse", "HEAD", cwd=work).strip()

    again = promote(svc, "m@1", "production")
    assert again.commit is None and again.head == forged and again.alias_moved
    [moved] = [e for e in svc.registry.history("m") if e.action == "alias.set" and e.new == "1"][-1:]
    assert f"commit {forged}" not in moved.reason and f"head {forged}" in moved.reason
    promote(svc, "m@2", "production")
    back = rollback(svc, "production")
    assert (back.version, back.image) == (1, image(1)) and back.commit
    assert evil not in overlay_text(clone(c1.repo, tmp_path / "attacker"), "production")

    mv1 = svc.registry.resolve("m@1")
    records = [r for _, r in svc.registry.results(mv1, "promote")]
    assert [(r["commit"], r["head"], r["reverts"]) for r in records] == [
        (c1.commit, c1.commit, None), (None, forged, None), (back.commit, back.commit, "m@2")]
    assert all(r["image"] == image(1) and r["env"] == "production" and r["alias"] == "prod" for r in records)


def test_every_pushed_promotion_is_in_the_history_even_when_no_alias_moves(svc: Services) -> None:
    promote(svc, "m@1", "staging")
    review = promote(svc, "m@2", "staging", branch="review/m-2")  # moves no alias
    events = [e for e in svc.registry.history("m") if e.action == "promote"]
    assert [e.name for e in events] == ["1", "2"]
    assert events[1].reason == f"pushed m@2 for staging to the review branch review/m-2 of {review.repo}: commit " \
                               f"{review.commit}"
    promote(svc, "m@1", "staging")  # nothing changed, nothing moved: nothing to record
    assert len([e for e in svc.registry.history("m") if e.action == "promote"]) == 2


def test_promoting_again_the_version_an_environment_runs_makes_no_commit(svc: Services) -> None:
    yaml = svc.settings.project_root / "shipyard.yaml"
    yaml.write_text(yaml.read_text().replace("deploy:\n", "deploy:\n  strategy: rollout\n", 1))
    promote(svc, "m@2", "staging")
    promote(svc, "m@1", "staging")  # rendered with stable version 2
    back = rollback(svc, "staging")  # back to m@2, rendered with stable version 1
    assert back.version == 2 and back.commit
    again = promote(svc, "m@2", "staging")
    assert again.commit is None and not again.alias_moved


def test_moving_an_environments_alias_by_hand_says_what_still_runs(tmp_path: Path, saved: Path) -> None:
    """`alias set` stays the manual repair path, but on a deploy environment's alias it says that git (Argo CD) still
    runs what was last promoted, and how to change that."""
    from tests.conftest import cli_env
    from tests.conftest import shipyard as cli

    env = cli_env(SHIPYARD_HOME=str(tmp_path / ".shipyard"))
    (tmp_path / "shipyard.yaml").write_text(f"deploy:\n  repo: file://{tmp_path}/gitops.git\n")
    cli("models", "register", str(saved), "--name", "m", env=env, cwd=tmp_path)
    quiet = cli("alias", "set", "m", "staging", "1", env=env, cwd=tmp_path)
    assert "note:" not in quiet.stderr  # never promoted through git: the alias is all there is
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(tmp_path / "gitops.git")], check=True)
    image = "registry.example.com/m@sha256:" + "a" * 64
    cli("promote", "m@1", "--env", "production", "--image", image, env=env, cwd=tmp_path)
    moved = cli("alias", "set", "m", "staging", "1", env=env, cwd=tmp_path)
    assert "note: m@staging follows deploy environment 'staging'" in moved.stderr
    assert "shipyard promote m@V --env staging" in moved.stderr
    other = cli("alias", "set", "m", "candidate", "1", env=env, cwd=tmp_path)
    assert "note:" not in other.stderr  # an alias no environment follows: nothing to say
