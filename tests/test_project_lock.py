"""The project lock: one writer of shipyard.lock at a time, released when its holder dies however it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from shipyard.core.artifacts.digest import Digest
from shipyard.core.workspace.lockfile import PathEntry, editing_lock, load_lock
from shipyard.core.workspace.projectlock import project_lock
from shipyard.errors import BackendUnavailableError
from tests.conftest import cli_env

HOLDER = r"""
import sys, time
from pathlib import Path
from shipyard.core.workspace.lockfile import PathEntry, editing_lock, load_lock
from shipyard.core.workspace.projectlock import project_lock
with project_lock(Path(sys.argv[1])):
    print("held", flush=True)
    if sys.argv[2] == "until-told":
        sys.stdin.readline()
    else:
        time.sleep(float(sys.argv[2]))
"""


def test_a_held_lock_makes_others_wait_and_dies_with_its_holder(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path), "120"], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        notices: list[str] = []
        with pytest.raises(BackendUnavailableError, match=f"pid {holder.pid}") as caught, \
                project_lock(tmp_path, waiting=notices.append, notice_after=0.0, wait_limit=0.3):
            pass
        assert len(str(caught.value).splitlines()) == 1
        assert len(notices) == 1 and f"pid {holder.pid}" in notices[0] and "waiting" in notices[0]
        os.kill(holder.pid, signal.SIGKILL)  # no cleanup code runs: the kernel releases the lock
        holder.wait(timeout=30)
        with project_lock(tmp_path, waiting=notices.append, notice_after=60.0, wait_limit=30.0):
            assert (tmp_path / ".shipyard" / "project.lock").read_text().split() == [str(os.getpid())]
        assert len(notices) == 1
    finally:
        holder.kill()
        holder.communicate(timeout=30)


def test_taking_the_lock_twice_in_one_thread_is_refused_not_a_deadlock(tmp_path: Path) -> None:
    with project_lock(tmp_path), pytest.raises(RuntimeError, match="not reentrant"), project_lock(tmp_path):
        pass
    with project_lock(tmp_path):  # and it was released
        pass


def test_edits_from_many_threads_all_land(tmp_path: Path) -> None:
    def edit(thread: int) -> None:
        for i in range(20):
            with editing_lock(tmp_path) as lock:
                lock.data[f"t{thread}/{i}"] = PathEntry(Digest("0" * 64), i)

    threads = [threading.Thread(target=edit, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(load_lock(tmp_path).data) == 8 * 20


def test_an_edit_that_fails_saves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="boom"), editing_lock(tmp_path) as lock:
        lock.data["x"] = PathEntry(Digest("0" * 64), 1)
        raise ValueError("boom")
    assert not (tmp_path / "shipyard.lock").exists()


def test_a_waiting_data_add_says_so_then_records(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("x")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path), "until-told"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    adding = None
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        adding = subprocess.Popen([sys.executable, "-m", "shipyard", "data", "add", "data.txt"], cwd=tmp_path,
                                  env=cli_env(SHIPYARD_HOME=str(tmp_path / ".shipyard")), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        assert adding.stderr is not None
        notice = adding.stderr.readline()  # it waits, and says so, until the holder lets go
        assert notice == (f"waiting for another shipyard command (pid {holder.pid}) to finish with shipyard.lock "
                          f"(project lock {tmp_path / '.shipyard' / 'project.lock'})\n")
        holder.communicate("go\n", timeout=30)
        out, err = adding.communicate(timeout=60)
        assert adding.returncode == 0 and err == "" and "recorded in shipyard.lock" in out
        assert "data.txt" in load_lock(tmp_path).data
    finally:
        for proc in (holder, adding):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=30)
