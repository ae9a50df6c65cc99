"""The GitOps repository, through the ``git`` command: a private clone, a commit of rendered files, a push.

The clone lives in the project's data folder (never the user's working tree or index) and is fetched and
reset to the remote branch before each change, under a file lock, so concurrent promotions serialize and
each one commits on top of the last. A push refused as not fast-forward (someone pushed in between) is
retried on a fresh fetch, a bounded number of times.

The repository's content was written by someone else: no hook of it runs (``core.hooksPath=/dev/null``,
``--no-verify``), and files are written without following a link out of the clone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TypeVar

from shipyard.errors import BackendUnavailableError, ConfigError, ConflictError, InvalidInputError

GIT_TIMEOUT = 120.0  # one git command (a fetch or push over a slow link)
LOCK_TIMEOUT = 600.0  # waiting for another promotion of the same repository
PUSH_ATTEMPTS = 5  # a push refused as not fast-forward: fetch, re-render, commit and push again
_BRANCH = re.compile(r"^(?!-)(?!.*\.\.)(?!.*//)(?!.*@\{)[A-Za-z0-9._/-]{1,200}(?<![./])\Z")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_REF_PREFIXES = ("refs", "heads", "tags", "remotes")
_SYMBOLIC = re.compile(r"^(?:[A-Z_]*_)?HEAD\Z")  # HEAD, FETCH_HEAD, ORIG_HEAD, MERGE_HEAD...
_COMMIT_ID = re.compile(r"^[0-9a-fA-F]{40}(?:[0-9a-fA-F]{24})?\Z")
_TRANSPORTS = ("https", "http", "ssh", "git", "file", "git+ssh", "ssh+git")
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
_HELPER = re.compile(r"^[A-Za-z0-9+.-]+::")  # git's <transport>::<address>: a remote helper runs
_SCP = re.compile(r"^(?:[A-Za-z0-9._~-]+@)?(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(?!:)")
# the user-info runs to the authority's last '@' (a password may hold one): https://a@b:pw@host -> https://host
_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<userinfo>[^/?#]*)@(?P<rest>.*)\Z", re.DOTALL)
_CREDENTIALS = re.compile(r"\b(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<userinfo>[^/?#\s'\"]*)@")
_UNREACHABLE = ("could not resolve host", "connection refused", "unable to connect", "could not read from remote",
                "does not appear to be a git repository", "repository not found", "connection timed out",
                "network is unreachable", "no route to host", "not found", "unable to access",
                "connection reset", "remote end hung up")
_AUTH = ("authentication failed", "permission denied", "terminal prompts disabled", "could not read username",
         "could not read password", "access denied", "403", "401")
_PROTOCOLS = ("-c", "protocol.allow=never",
              *(x for t in ("https", "http", "ssh", "git", "file") for x in ("-c", f"protocol.{t}.allow=always")))
T = TypeVar("T")


@dataclass(frozen=True)
class Published:
    """What ``publish`` did: the commit on the remote (None when nothing changed), where, and which files."""

    url: str
    branch: str
    commit: str | None
    changed: bool
    files: tuple[str, ...] = ()
    attempts: int = 1
    head: str | None = None  # the branch's commit on the remote after this (== commit when one was made)


class GitFailed(Exception):
    def __init__(self, args: tuple[str, ...], code: int, stderr: str) -> None:
        super().__init__(f"git {' '.join(args[:2])} exited {code}")
        self.args_ = args
        self.code = code
        self.stderr = stderr


def check_branch(name: str, what: str = "--branch") -> str:
    """``name`` if it is a branch name git accepts and no other ref name could be confused with: a name git
    would read as a full ref (``refs/...``), a ref's short form (``heads/``, ``tags/``, ``remotes/``), a
    symbolic ref (``HEAD``, ``FETCH_HEAD``), ``@`` or a commit id would make later pushes ambiguous."""
    parts = name.split("/")
    if not _BRANCH.match(name) or any(p.startswith(".") or p.endswith(".lock") for p in parts):
        raise InvalidInputError(f"{what} {name[:80]!r} is not a branch name git accepts (letters, digits, '.', "
                                "'_', '-', '/'; no part starts with '.' or ends with '.lock')")
    if parts[0] in _REF_PREFIXES or _SYMBOLIC.match(parts[0]) or name.startswith("@") \
            or _COMMIT_ID.match(name):
        raise InvalidInputError(f"{what} {name[:80]!r} reads as another git ref (refs/..., heads/..., HEAD, @, a "
                                "commit id), which would make pushes to the branch ambiguous: give a plain branch "
                                "name, e.g. main or review/m-2")
    return name


def check_url(url: str) -> str:
    """``url`` if git reaches it with a transport Shipyard allows: https, http, ssh, git, file, the scp-like
    ``[user@]host:path``, or a path. Remote helpers (``ext::CMD``, ``fd::N``, any ``X::ADDRESS``) and other
    ``SCHEME://`` forms are refused: they run commands or wait on file descriptors."""
    scheme = _SCHEME.match(url)
    bad = not url or url.startswith("-") or any(c.isspace() for c in url) or not url.isprintable() \
        or _HELPER.match(url) is not None \
        or (scheme is not None and scheme["scheme"].lower() not in _TRANSPORTS) \
        or (scheme is None and ":" in url.split("/", 1)[0] and not _SCP.match(url))
    if bad:
        raise ConfigError(f"deploy.repo {redact(url)[:80]!r} is not a git URL Shipyard uses: give https://, "
                          "http://, ssh://, git:// or file:// (e.g. https://git.example.com/team/gitops.git), "
                          "git@host:team/gitops.git or a path")
    return url


def redact(url: str) -> str:
    """``url`` without the credentials it may carry, for manifests, messages and records: ``https://user:TOKEN@host``
    becomes ``https://host`` (git still gets the URL as written); an ssh user name (``ssh://git@host``,
    ``git@host:path``) is kept, since it is no secret and Argo CD needs it."""
    m = _USERINFO.match(url)
    return url if m is None else _kept(m["scheme"], m["userinfo"]) + m["rest"]


def _kept(scheme: str, userinfo: str) -> str:
    """``SCHEME://`` and what of the user-info may be shown: the user name of an ssh URL, nothing else."""
    user = userinfo.split(":", 1)[0] if scheme.lower() in ("ssh", "git+ssh", "ssh+git") else ""
    return f"{scheme}://{user}@" if user else f"{scheme}://"


def redact_text(text: str, url: str) -> str:
    """``text`` (git's output) with ``url``'s credentials, and any other URL's, removed (as ``redact`` does)."""
    if url != redact(url):
        text = text.replace(url, redact(url))
    return _CREDENTIALS.sub(lambda m: _kept(m["scheme"], m["userinfo"]), text)


def first_line(text: str, limit: int = 160) -> str:
    """The line of git's output that says what went wrong (``fatal:``/``error:`` first), as one short line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    at = next((i for i, ln in enumerate(lines) if ln.lower().startswith(("fatal:", "error:", "remote: error",
                                                                          "! ["))), len(lines) - 1)
    pick = lines[at] if lines else ""
    if pick.endswith(":") and at + 1 < len(lines):  # "fatal: unable to connect to HOST:" and the reason below
        pick = f"{pick} {lines[at + 1]}"
    return _CONTROL.sub(" ", pick)[:limit]


def init_bare(path: Path, branch: str = "main") -> str:
    """A bare repository at ``path`` (made if absent; its HEAD names ``branch``), as a file:// URL: a GitOps
    repository on this machine, such as the demo's."""
    if not (path / "HEAD").is_file():
        path.mkdir(parents=True, exist_ok=True)
        try:
            done = subprocess.run(["git", "init", "-q", "--bare", f"--initial-branch={check_branch(branch)}",
                                   str(path)], capture_output=True, text=True, errors="replace", timeout=GIT_TIMEOUT,
                                  check=False)
        except FileNotFoundError:
            raise BackendUnavailableError("git is not installed: install it (e.g. apt-get install git) to "
                                          "promote through a GitOps repository") from None
        if done.returncode != 0:
            raise BackendUnavailableError(f"cannot make a git repository at {path}: {first_line(done.stderr)}")
    return path.resolve().as_uri()


# where a token is sent: https, or plain http only to this machine (a token never crosses a network in clear)
TOKEN_URLS = ("https://", "http://127.0.0.1:", "http://127.0.0.1/", "http://localhost:", "http://localhost/")


class GitOpsRepo:
    """A remote GitOps repository, worked on through a private clone in ``workdir``."""

    def __init__(self, url: str, workdir: Path, branch: str = "main", *, timeout: float = GIT_TIMEOUT,
                 lock_timeout: float = LOCK_TIMEOUT, credentials: Callable[[], tuple[str, str]] | None = None) -> None:
        """``credentials``: (user, token) for an https repository, asked at each git command (a token resolved
        from a secret reference); git gets them as an HTTP header through its environment, never in the URL,
        on a command line or in a file."""
        self.url = check_url(url)  # what git gets, credentials and all
        self._credentials = credentials
        self.shown = redact(url)  # what any message, record or manifest names
        self.branch = check_branch(branch, "deploy.branch")
        key = hashlib.sha256(url.encode()).hexdigest()[:16]
        self.clone = workdir / key
        self.lock_path = workdir / f"{key}.lock"
        self.timeout = timeout
        self.lock_timeout = lock_timeout

    # --- git -----------------------------------------------------------------------------------------------

    def _env(self, author: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k in (
            "GIT_SSH", "GIT_SSH_COMMAND", "GIT_ASKPASS", "GIT_SSL_CAINFO", "GIT_SSL_NO_VERIFY")}
        env.update(GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
        env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        if self._credentials is not None and self.url.lower().startswith(TOKEN_URLS):
            import base64

            user, token = self._credentials()
            basic = base64.b64encode(f"{user}:{token}".encode()).decode()
            env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="http.extraHeader",
                       GIT_CONFIG_VALUE_0=f"Authorization: Basic {basic}")
        if author is not None:
            name = re.sub(r"[<>\n]", "", author) or "shipyard"
            email = name if "@" in name else f"{name}@shipyard"
            env.update(GIT_AUTHOR_NAME=name, GIT_AUTHOR_EMAIL=email, GIT_COMMITTER_NAME=name,
                       GIT_COMMITTER_EMAIL=email)
        return env

    def _git(self, *args: str, author: str | None = None, stdin: str | None = None, check: bool = True
             ) -> subprocess.CompletedProcess[str]:
        cmd = ["git", "-C", str(self.clone), "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false",
               *_PROTOCOLS, "-c", "core.symlinks=true", "-c", "advice.detachedHead=false",
               "-c", "commit.gpgSign=false", "-c", "core.autocrlf=false", *args]
        try:
            done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, errors="replace",
                                  timeout=self.timeout, env=self._env(author), check=False)
        except FileNotFoundError:
            raise BackendUnavailableError("git is not installed: install it (e.g. apt-get install git) to "
                                          "promote through a GitOps repository") from None
        except subprocess.TimeoutExpired:
            raise BackendUnavailableError(f"git {args[0]} with the GitOps repository {self.shown} took more than "
                                          f"{self.timeout:.0f} s: check the network and the remote") from None
        if check and done.returncode != 0:
            raise GitFailed(args, done.returncode, done.stderr)
        return done

    def _remote_error(self, exc: GitFailed, doing: str) -> Exception:
        low = exc.stderr.lower()
        detail = first_line(redact_text(exc.stderr, self.url))
        if any(w in low for w in _AUTH):
            return BackendUnavailableError(f"the GitOps repository {self.shown} refused access while {doing} "
                                           f"({detail}): check your git credentials for it")
        if any(w in low for w in _UNREACHABLE):
            return BackendUnavailableError(f"cannot reach the GitOps repository {self.shown} while {doing} "
                                           f"({detail}): check deploy.repo in shipyard.yaml and that the server "
                                           "is up")
        return BackendUnavailableError(f"git failed while {doing} with {self.shown} ({detail})")

    # --- the clone -----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the clone: one promotion at a time per repository (across processes)."""
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            deadline = time.monotonic() + self.lock_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() > deadline:
                        raise ConflictError(f"another promotion has held {self.lock_path} for over "
                                            f"{self.lock_timeout:.0f} s: wait for it, or remove the file if "
                                            "no shipyard process is running") from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _ensure_clone(self) -> None:
        if (self.clone / ".git").is_dir() and not (self.clone / ".git").is_symlink():
            got = self._git("config", "--get", "remote.origin.url", check=False).stdout.strip()
            if got == self.url:
                return
        self._remove_clone()
        self.clone.mkdir(parents=True)
        self._git("init", "-q")
        self._git("remote", "add", "origin", self.url)

    def _fetch(self) -> str | None:
        """Fetch the branch; its commit on the remote, or None when the remote has no such branch yet."""
        try:
            self._git("fetch", "-q", "--no-tags", "--no-recurse-submodules", "--no-write-fetch-head", "origin",
                      f"+refs/heads/{self.branch}:refs/remotes/origin/{self.branch}")
        except GitFailed as exc:
            if "couldn't find remote ref" in exc.stderr.lower():  # a new, empty repository: the first commit
                return None
            raise self._remote_error(exc, "fetching") from None
        return self._git("rev-parse", f"refs/remotes/origin/{self.branch}").stdout.strip()

    def _reset(self, head: str | None) -> None:
        """The working tree exactly as the remote branch (or empty, for a remote without it)."""
        if head is None:
            self._git("symbolic-ref", "HEAD", "refs/heads/shipyard-work")
            self._git("update-ref", "-d", "refs/heads/shipyard-work", check=False)
            self._git("read-tree", "--empty")
        else:
            self._git("checkout", "-q", "-f", "-B", "shipyard-work", head)
            self._git("reset", "-q", "--hard", head)
        self._git("clean", "-q", "-ffdx")

    # --- writing -------------------------------------------------------------------------------------------

    def _folder(self, folder: str) -> Path:
        """The GitOps folder inside the clone; a link on the way there (the repository's content) is refused."""
        where = self.clone
        for part in _safe_parts(folder, "deploy.folder") if folder not in ("", ".") else ():
            where = where / part
            if where.is_symlink():
                shown = "/".join(where.relative_to(self.clone).parts)
                raise ConflictError(f"the GitOps repository {self.shown} holds a symbolic link at {shown}: Shipyard "
                                    "never writes through links; replace it with a folder there")
            if where.exists() and not where.is_dir():
                shown = "/".join(where.relative_to(self.clone).parts)
                raise ConflictError(f"the GitOps repository {self.shown} holds a file at {shown}, where the GitOps "
                                    "folder goes: move it, or set deploy.folder in shipyard.yaml")
        return where

    # --- the one public operation ----------------------------------------------------------------------------

    def publish(self, write: Callable[[Path], Sequence[str]], message: str, author: str, *,
                folder: str = "deploy", branch: str | None = None,
                on_pushed: Callable[[Published], T] | None = None) -> tuple[Published, T | None]:
        """Let ``write(path)`` write the GitOps folder (``folder`` in the repository; it returns the paths it
        changed) on top of the remote branch, commit what changed and push it.

        ``branch``: push to that review branch instead (made from the remote branch). ``on_pushed`` runs after
        a successful push (or when nothing changed), still holding the lock: an alias move there follows the
        pushes in their order. A push refused as not fast-forward is tried again on a fresh fetch, with
        ``write`` called again (the files rendered afresh); ``PUSH_ATTEMPTS`` refusals in a row are a ConflictError.
        """
        target = check_branch(branch) if branch is not None else self.branch
        with self.locked():
            try:
                return self._publish(write, message, author, folder, target, on_pushed)
            except GitFailed:  # a local step failed: the clone is damaged (an interrupted git, a full disk)
                self._remove_clone()
            try:
                return self._publish(write, message, author, folder, target, on_pushed)
            except GitFailed as exc:
                raise BackendUnavailableError(f"git failed in Shipyard's clone {self.clone} of {self.shown} "
                                              f"({first_line(redact_text(exc.stderr, self.url))}): remove "
                                              "that folder and run the "
                                              "promotion again") from None

    def message_of(self, commit: str) -> str | None:
        """The message of ``commit`` on the branch (fetched if the clone lacks it); None when the repository
        does not hold it (history rewritten) or cannot be read."""
        if not re.fullmatch(r"[0-9a-f]{7,64}", commit):
            return None
        with self.locked():
            try:
                self._ensure_clone()
                if self._git("cat-file", "-e", f"{commit}^{{commit}}", check=False).returncode != 0:
                    self._fetch()
                done = self._git("show", "-s", "--format=%B", f"{commit}^{{commit}}", "--", check=False)
            except GitFailed:
                return None
        return done.stdout if done.returncode == 0 else None

    def _remove_clone(self) -> None:
        if self.clone.is_symlink() or self.clone.is_file():
            self.clone.unlink()
        elif self.clone.exists():
            shutil.rmtree(self.clone)

    def _publish(self, write: Callable[[Path], Sequence[str]], message: str, author: str, folder: str, target: str,
                 on_pushed: Callable[[Published], T] | None) -> tuple[Published, T | None]:
        self._ensure_clone()
        for attempt in range(1, PUSH_ATTEMPTS + 1):
            head = self._fetch()
            self._reset(head)
            where = self._folder(folder)
            written = tuple(write(where))
            self._git("add", "-A", "--", str(where.relative_to(self.clone)) if where != self.clone else ".")
            if self._git("diff", "--cached", "--quiet", check=False).returncode == 0:
                done = Published(self.shown, target, None, False, written, attempt, head)
                return done, on_pushed(done) if on_pushed else None
            self._git("commit", "-q", "--no-verify", "-F", "-", author=author, stdin=message)
            commit = self._git("rev-parse", "HEAD").stdout.strip()
            pushed = self._git("push", "--porcelain", "--no-verify", "origin",
                               f"HEAD:refs/heads/{target}", check=False)
            if pushed.returncode == 0:
                done = Published(self.shown, target, commit, True, written, attempt, commit)
                return done, on_pushed(done) if on_pushed else None
            text = pushed.stdout + "\n" + pushed.stderr
            if not _non_fast_forward(text):
                raise self._push_error(GitFailed(("push",), pushed.returncode, text), target)
            if target != self.branch:
                raise ConflictError(f"the branch {target} already exists in {self.shown} with other commits: "
                                    "choose another --branch name")
        raise ConflictError(f"the push to {self.branch} of {self.shown} was refused {PUSH_ATTEMPTS} times as not "
                            "fast-forward (others keep pushing): run the promotion again")

    def _push_error(self, exc: GitFailed, target: str) -> Exception:
        low = exc.stderr.lower()
        if "matches more than one" in low:
            return self._ambiguous(target)
        if any(w in low for w in _AUTH) or any(w in low for w in _UNREACHABLE):
            return self._remote_error(exc, f"pushing to {target}")
        return ConflictError(f"the GitOps repository {self.shown} refused the push to {target} "
                             f"({_refusal(redact_text(exc.stderr, self.url))}): push a "
                             "branch for review with --branch NAME, or ask its owners to allow the push")

    def _ambiguous(self, target: str) -> Exception:
        """The push to ``target`` is ambiguous: the remote holds another ref that git also reads as it (such as
        ``refs/heads/refs/heads/main``); name it, and how to remove it."""
        full = f"refs/heads/{target}"
        done = self._git("ls-remote", "origin", check=False)
        names = {ln.split("\t", 1)[1] for ln in done.stdout.splitlines() if "\t" in ln}
        rules = (f"refs/{full}", f"refs/tags/{full}", f"refs/heads/{full}", f"refs/remotes/{full}",
                 f"refs/remotes/{full}/HEAD")
        others = sorted(n for n in names if n in rules)[:3] or [f"refs/heads/{full}"]
        shown = ", ".join(_CONTROL.sub(" ", n)[:120] for n in others)
        return ConflictError(f"the GitOps repository {self.shown} holds {shown}, which git cannot tell from "
                             f"the branch {target}, so the push is ambiguous: delete it there (in a clone of it: "
                             f"git push origin --delete {others[0]}) and run the promotion again")


def _refusal(text: str) -> str:
    """Why the server refused a push: its own message (``remote: ...``), else the reason git gives."""
    said = [ln.strip()[len("remote:"):].strip() for ln in text.splitlines() if ln.strip().startswith("remote:")]
    said = [ln for ln in said if ln]
    reason = re.search(r"\[remote rejected\][^(\n]*\(([^)\n]{1,200})\)", text)
    parts = [said[0]] if said else []
    if reason:
        parts.append(reason.group(1))
    return _CONTROL.sub(" ", ": ".join(parts))[:200] if parts else first_line(text)


def _non_fast_forward(text: str) -> bool:
    low = text.lower()
    return any(w in low for w in ("non-fast-forward", "fetch first", "[rejected]", "stale info",
                                  "cannot lock ref", "failed to update ref"))


def _safe_parts(path: str, what: str) -> tuple[str, ...]:
    """``path`` (relative, '/'-separated) as its parts; an absolute path, '..', or '.git' is refused."""
    p = PurePosixPath(path)
    parts = tuple(x for x in p.parts if x not in ("", "."))
    if not parts or p.is_absolute() or "\\" in path or any(x == ".." or x.lower() == ".git" for x in parts) \
            or any(_CONTROL.search(x) for x in parts):
        raise InvalidInputError(f"{what} {path[:80]!r} is not a relative path inside the GitOps repository")
    return parts


__all__ = ["GitOpsRepo", "Published", "check_branch"]
