"""Throwaway virtual environments built with uv, cached by the digest of what they install.

An environment lives in ``ROOT/<key>``, where the key is the SHA-256 of the Python version asked for,
every requirement line, every override, every --find-links folder (with the names, sizes and times of
its files) and uv's own version. It is built in a temp folder beside its final place, under a lock
on ``ROOT/<key>.lock``, and renamed into place only when complete: two builds at once wait for each
other, and a build killed halfway leaves a ``.build-*`` folder that is never used (the next build of
that key removes it). The model runs in the environment through ``child.py`` (see ``run_child``).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.errors import BackendUnavailableError, InvalidInputError

MARKER = "shipyard-env.json"  # written last, inside the temp folder: a folder under its key is complete
INSTALL_TIMEOUT = 1800.0  # seconds for uv to create and fill an environment
CHILD_TIMEOUT = 600.0  # seconds for the model to load and answer its golden examples
MAX_RESULT_BYTES = 256 * 1024 * 1024
_TAIL = 40  # lines of uv's output kept for a failure's reason
_STDERR_KEPT = 64 * 1024  # characters of the model process's stderr kept for a failure's reason
_CHILD_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
_BOOT = ("import sys; sys.path.insert(0, sys.argv[1]); "
         "from shipyard.adapters.environments.child import main; sys.exit(main(sys.argv[2]))")  # argv[2]: the flavor

Lines = Callable[[str], None]


def _ignore(_: str) -> None:
    """The null output callback."""


@dataclass(frozen=True, slots=True)
class EnvSpec:
    """What an environment holds: the lines uv installs, and what they were made from."""

    python: str  # the version asked for: "3.11"
    requirements: tuple[str, ...]  # the lock's lines with the overrides applied
    overrides: tuple[str, ...] = ()
    find_links: tuple[Path, ...] = ()


@dataclass(frozen=True, slots=True)
class Environment:
    key: str  # sha256:<hex> of the spec and the installer
    path: Path
    python_version: str  # the exact version the environment runs, from its pyvenv.cfg
    reused: bool  # found complete in the cache: nothing was installed
    installer: str

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


@dataclass(frozen=True, slots=True)
class NotInstalled:
    """uv could not make the environment: no Python of that version, or the requirements do not resolve."""

    key: str
    reason: str  # one line, from uv's own output
    installer: str


def uv_bin() -> str:
    import uv

    return str(uv.find_uv_bin())


@functools.cache
def uv_version() -> str:
    """``uv 0.13.9``: part of every environment's key (another uv may resolve the same lines otherwise)."""
    try:
        done = subprocess.run([uv_bin(), "--version"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BackendUnavailableError(f"cannot run uv ({exc}); reinstall shipyard (it depends on uv)") from exc
    return " ".join(done.stdout.split()[:2])


def find_links_state(folder: Path) -> list[list[Any]]:
    """The files of a --find-links folder as (name, size, mtime): a rebuilt wheel is a new environment."""
    try:
        with os.scandir(folder) as found:
            entries = sorted(found, key=lambda e: e.name)
    except OSError as exc:
        raise InvalidInputError(f"cannot read --find-links {folder}: {exc.strerror or exc}") from exc
    out = []
    for entry in entries[:10_000]:
        with contextlib.suppress(OSError):
            st = entry.stat()
            out.append([entry.name, st.st_size, st.st_mtime_ns])
    return out


def environment_key(spec: EnvSpec, installer: str) -> str:
    body = {"python": spec.python, "requirements": list(spec.requirements), "overrides": list(spec.overrides),
            "find_links": [[str(f), find_links_state(f)] for f in spec.find_links], "installer": installer}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


class EnvCache:
    """Environments under ``root``, one folder per key."""

    def __init__(self, root: Path, timeout: float = INSTALL_TIMEOUT) -> None:
        self.root = root
        self.timeout = timeout

    def folder(self, key: str) -> Path:
        return self.root / key.removeprefix("sha256:")[:40]

    def ensure(self, spec: EnvSpec, on_line: Lines = _ignore) -> Environment | NotInstalled:
        """The environment of ``spec``, built if the cache does not hold it complete."""
        for line in spec.requirements + spec.overrides:
            if not line.strip() or line.lstrip().startswith("-") or "\n" in line or "\r" in line:
                raise InvalidInputError(f"not a requirement: {line[:80]!r} (options and empty lines are refused)")
        installer = uv_version()
        key = environment_key(spec, installer)
        final = self.folder(key)
        found = _complete(final, key, installer)
        if found is not None:
            return found
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendUnavailableError(f"cannot create the environment cache {self.root} "
                                          f"({exc.strerror or exc}); set SHIPYARD_CACHE_DIR to a writable folder"
                                          ) from exc
        try:
            return self._ensure_locked(spec, key, installer, final, on_line)
        except OSError as exc:  # a lock that is a link, a cache folder that is read-only or full, ...
            raise BackendUnavailableError(f"cannot build in the environment cache {self.root} "
                                          f"({exc.strerror or exc}: {exc.filename or ''}); set SHIPYARD_CACHE_DIR "
                                          "to a writable folder") from exc

    def _ensure_locked(self, spec: EnvSpec, key: str, installer: str, final: Path,
                       on_line: Lines) -> Environment | NotInstalled:
        with _locked(self.root / f"{final.name}.lock"):
            found = _complete(final, key, installer)
            if found is not None:
                return found
            if final.is_symlink() or (final.exists() and not final.is_dir()):  # never followed, never reused
                final.unlink()
            elif final.exists():  # not ours, or damaged after the fact: never reused
                shutil.rmtree(final, ignore_errors=True)
            for stale in self.root.glob(f".build-{final.name}-*"):  # a build killed halfway (we hold its lock)
                shutil.rmtree(stale, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".build-{final.name}-", dir=self.root))
            try:
                failed = self._build(spec, tmp, key, installer, on_line)
                if failed is not None:
                    return failed
                os.rename(tmp, final)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
            return Environment(key, final, _python_version(final), False, installer)

    def _build(self, spec: EnvSpec, tmp: Path, key: str, installer: str, on_line: Lines) -> NotInstalled | None:
        deadline = time.monotonic() + self.timeout
        venv = tmp  # uv makes a venv in an empty folder; --relocatable: it still works once renamed
        code, tail = _stream([uv_bin(), "venv", "--relocatable", "--no-project", f"--python={spec.python}", str(venv)],
                             on_line, deadline)
        if code != 0:
            why = _reason(tail)
            if "download" in why.lower():  # offline, or the download host is out of reach: the URL helps no one
                why = "uv found none here and could not download one"
            return NotInstalled(key, f"no Python {spec.python}: {why}; install it, or pass --python /path/to/python",
                                installer)
        wanted = "".join(f"{line}\n" for line in spec.requirements)  # the overrides are in them already
        (tmp / "shipyard-requirements.txt").write_text(wanted)
        links = [arg for f in spec.find_links for arg in ("--find-links", str(f))]
        code, tail = _stream([uv_bin(), "pip", "install", "--python", str(venv / "bin" / "python"), "--no-config",
                              *links, "-r", str(tmp / "shipyard-requirements.txt")], on_line, deadline)
        if code != 0:
            return NotInstalled(key, _reason(tail), installer)
        marker = {"key": key, "installer": installer, "python": spec.python,
                  "requirements": list(spec.requirements), "overrides": list(spec.overrides),
                  "find_links": [str(f) for f in spec.find_links]}
        with open(tmp / MARKER, "x") as f:
            json.dump(marker, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        return None


def _complete(folder: Path, key: str, installer: str) -> Environment | None:
    if folder.is_symlink():  # the cache makes folders, never links: one planted there is not an environment
        return None
    try:
        with open(folder / MARKER, "rb") as f:
            marker = json.loads(f.read(1024 * 1024))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("key") != key or not (folder / "bin" / "python").exists():
        return None
    return Environment(key, folder, _python_version(folder), True, installer)


def _python_version(folder: Path) -> str:
    try:
        text = (folder / "pyvenv.cfg").read_text(errors="replace")[:65536]
    except OSError:
        return "unknown"
    for line in text.splitlines():
        name, _, value = line.partition("=")
        if name.strip() in ("version_info", "version"):
            return value.strip()
    return "unknown"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _stream(argv: Sequence[str], on_line: Lines, deadline: float) -> tuple[int, list[str]]:
    """Run ``argv``, its output line by line to ``on_line``; (exit code, its last lines). Killed at ``deadline``."""
    env = {**os.environ, "NO_COLOR": "1", "UV_NO_PROGRESS": "1"}
    tail: list[str] = []
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, start_new_session=True, text=True, errors="replace")

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail.append(line)
            del tail[:-_TAIL]
            on_line(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        _kill(proc)
        code = 124
        tail.append(f"error: uv took longer than {INSTALL_TIMEOUT:.0f} s and was stopped")
    finally:
        reader.join(5)
        if proc.stdout is not None:
            proc.stdout.close()
    return code, tail


def _kill(proc: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _reason(tail: Sequence[str]) -> str:
    """uv's reason for failing, on one line: its ``error:`` / ``╰─▶`` lines, box drawing removed."""
    lines = [line.strip() for line in tail if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.startswith(("error:", "\u00d7", "x "))), None)
    picked = lines[start:] if start is not None else lines[-3:]
    text = " ".join(line.lstrip("\u00d7╰─▶│├ ").strip() for line in picked if not line.startswith("hint:"))
    text = " ".join(text.split()).removeprefix("error: ").replace(" cause: ", ": ")
    return (text[:400] + "…") if len(text) > 400 else (text or "uv failed without saying why")


# -- the model in the environment ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChildResult:
    ok: bool
    outputs: Any = None
    error: str = ""  # one line: why the model did not load or answer
    stage: str = ""  # "import", "load", "predict"
    packages: Mapping[str, str] | None = None
    untrusted: bool = False  # the flavor refused: loading needs something the trust set did not hold


class Child:
    """A model process in an environment: started (importing the flavor's libraries), then given one request.

    It runs isolated (``-I``: no user site, no PYTHON* variables, no script folder on sys.path), its
    environment stripped to a few variables; its sys.path gains one folder holding only a link named
    ``shipyard`` to this Shipyard package, so it imports the flavor loaders and nothing else of ours.
    Until it gets a request it has loaded no model and read no file of one: started early (``early``),
    it only imports the flavor's libraries while this process opens the registry.
    """

    def __init__(self, python: Path, key: str, flavor: str) -> None:
        self.key = key
        self.flavor = flavor
        self._tmp = tempfile.TemporaryDirectory(prefix="shipyard-verify-")
        self.folder = Path(self._tmp.name)
        shim = self.folder / "path"
        shim.mkdir()
        (shim / "shipyard").symlink_to(Path(__file__).resolve().parents[2], target_is_directory=True)
        env = {k: os.environ[k] for k in _CHILD_ENV if k in os.environ}
        self._stderr = ""  # the last _STDERR_KEPT characters it wrote: a chatty library never fills memory
        self._reader: threading.Thread | None = None
        try:
            self.proc: subprocess.Popen[str] | None = subprocess.Popen(
                [str(python), "-I", "-c", _BOOT, str(shim), flavor], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, text=True, errors="replace", env=env, cwd=self.folder, start_new_session=True)
            self.failed = ""
            self._reader = threading.Thread(target=self._drain, daemon=True)
            self._reader.start()
        except OSError as exc:
            self.proc = None
            self.failed = f"cannot start {python}: {exc.strerror or exc}"

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        with contextlib.suppress(OSError, ValueError):
            while chunk := self.proc.stderr.read(65536):
                self._stderr = (self._stderr + chunk)[-_STDERR_KEPT:]

    def answer(self, folder: Path, flavor_meta: Mapping[str, Any], trusted: Sequence[str], inputs: Any,
               timeout: float = CHILD_TIMEOUT) -> ChildResult:
        """Load the model in ``folder`` (only what ``trusted`` allows: decided here, by the registry's trust
        rules) and answer ``inputs``."""
        if self.proc is None:
            return ChildResult(False, error=self.failed, stage="import")
        request, result = self.folder / "request.json", self.folder / "result.json"
        request.write_text(json.dumps({"folder": str(folder), "flavor": self.flavor, "flavor_meta": dict(flavor_meta),
                                       "trusted": list(trusted), "inputs": inputs, "result": str(result)}))
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):  # it is gone already (its stdin closed): its stderr says why
            self.proc.stdin.write(f"{request}\n")
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            return ChildResult(False, error=f"the model did not answer within {timeout:.0f} s", stage="predict")
        if self._reader is not None:
            self._reader.join(5)
        try:
            with open(result, "rb") as f:
                body = json.loads(f.read(MAX_RESULT_BYTES))
        except (OSError, ValueError, RecursionError):
            lines = [line for line in self._stderr.splitlines() if line.strip()]
            code = self.proc.returncode
            status = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
            why = lines[-1].strip()[:300] if lines else f"{status}, without an answer"
            return ChildResult(False, error=f"the model's process failed: {why}", stage="import")
        if not isinstance(body, dict):
            return ChildResult(False, error="the model's process wrote no result", stage="import")
        found = body.get("packages")  # written by whatever ran there: kept only as short one-line names
        packages = {_flat(k, 100): _flat(v, 100) for k, v in list(found.items())[:50]} \
            if isinstance(found, dict) else None
        if body.get("ok") is True:
            return ChildResult(True, outputs=body.get("outputs"), packages=packages)
        return ChildResult(False, error=_flat(body.get("error"), 500), stage=_flat(body.get("stage"), 20),
                           packages=packages, untrusted=body.get("untrusted") is True)

    def close(self) -> None:
        """Stop the process (if it still runs) and remove its folder; closing twice is harmless."""
        if self.proc is not None and self.proc.poll() is None:
            _kill(self.proc)
        if self.proc is not None:
            for stream in (self.proc.stdin, self.proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        self._tmp.cleanup()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _flat(value: Any, limit: int) -> str:
    """One line of at most ``limit`` characters, whatever ``value`` is."""
    return " ".join(str(value).split())[:limit]


def run_child(python: Path, folder: Path, flavor: str, flavor_meta: Mapping[str, Any], trusted: Sequence[str],
              inputs: Any, timeout: float = CHILD_TIMEOUT) -> ChildResult:
    """Load the model in ``folder`` with ``python`` and answer ``inputs``, in a new ``Child``."""
    with Child(python, "", flavor) as child:
        return child.answer(folder, flavor_meta, trusted, inputs, timeout)


# -- starting early: the environment a request used last time ------------------------------------------------


def remember(root: Path, hint: str, key: str, flavor: str) -> None:
    """Note that the request ``hint`` (a reference, its options, the registry) ran in ``key`` with ``flavor``."""
    with contextlib.suppress(OSError):
        folder = root / "hints"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / hashlib.sha256(hint.encode()).hexdigest()[:40]
        tmp = folder / f".{target.name}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"key": key, "flavor": flavor}))
        os.replace(tmp, target)


def early(root: Path, hint: str) -> Child | None:
    """A ``Child`` started in the environment ``hint`` ran in last time, if the cache still holds it complete.

    Only a guess: the caller uses it when the key it computes is the same, and closes it otherwise.
    """
    try:
        with open(root / "hints" / hashlib.sha256(hint.encode()).hexdigest()[:40], "rb") as f:
            noted = json.loads(f.read(4096))
        key, flavor = str(noted["key"]), str(noted["flavor"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", flavor) or not re.fullmatch(r"sha256:[0-9a-f]{64}", key):
        return None  # a hint is a file like any other: its key names a folder of the cache, never a path
    env = _complete(EnvCache(root).folder(key), key, "")
    return Child(env.python, key, flavor) if env is not None else None
