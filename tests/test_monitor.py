"""`shipyard monitor`: a version's drift, data quality and traffic read back from its inference logs.

The logs are written as `shipyard serve` writes them (drift windows counted with `count_rows`, request records
with and without payloads), recorded on server runs as the server records them, left unpublished on this machine,
and given with --logs; hostile lines and files are skipped and counted. The CLI runs in-process (CliRunner)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import shipyard
from shipyard.adapters.monitoring.bins import count_rows
from shipyard.core.lineage.records import RunStatus
from shipyard.core.monitoring.drift import Baseline
from shipyard.core.monitoring.logs import LogReader, Period, parse_since
from shipyard.errors import InvalidInputError, NotFoundError
from shipyard.interfaces.cli.app import app
from shipyard.interfaces.cli.monitor import EXIT_DRIFT, EXIT_NOTHING, EXIT_QUALITY
from shipyard.wiring import Services, from_environment
from shipyard.wiring.inference_logs import count_payloads
from shipyard.wiring.monitoring import baseline, monitor

runner = CliRunner()
SHIFTED_WINDOWS = 5
ROWS = 200  # a window's rows


@dataclass
class Project:
    root: Path
    env: dict[str, str]
    base: Baseline
    now: float
    server_run: str
    hostile: Path

    def services(self) -> Services:
        return from_environment(self.env, self.root)


def _rows(rng: np.random.Generator, n: int, shift: float = 0.0, out_of_range: float = 0.0) -> Any:
    x = rng.normal(0, 1, (n, 3))
    x[:, 0] += shift
    x[: int(n * out_of_range), 2] = 50.0  # far past the reference's range
    return x


def _request(t: float, x: Any = None, y: Any = None, outcome: str = "ok", rid: str = "") -> dict[str, Any]:
    entry: dict[str, Any] = {"request_id": rid or os.urandom(8).hex(), "time": t, "model": "m", "version": "1",
                             "latency_ms": 2.0 + (t % 7), "outcome": outcome}
    if x is not None:
        entry["inputs"], entry["outputs"] = x.tolist(), y.tolist()
    return entry


def _lines(entries: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in entries)


def _record_server_run(svc: Services, folder: Path, files: dict[str, bytes], tags: dict[str, str]) -> str:
    """A server run with its logs published as `shipyard serve` publishes them (artifacts inference-logs/*)."""
    run = svc.tracker.start_run(name="serve m@1", experiment="serving", tags=tags)
    for name, data in files.items():
        path = folder / name
        path.write_bytes(data)
        svc.tracker.log_artifact(run.id, path, name=f"inference-logs/{name}")
        path.unlink()
    svc.tracker.end_run(run.id, RunStatus.FINISHED)
    return run.id


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    from sklearn.linear_model import LogisticRegression

    root = tmp_path_factory.mktemp("monitor")
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1, (5000, 3))
    model = LogisticRegression(max_iter=200).fit(x, (x[:, 0] + x[:, 1] > 0).astype(int))
    client = shipyard.Client(root)
    try:
        run = client.start_run("train")
        client.log_model(run.id, model, "m", examples=x[:2], reference=x)
        client.log_model(run.id, model, "m", examples=x[:2], reference=x)  # m@2: a profile, no traffic
        client.log_model(run.id, model, "m", examples=x[:2])  # m@3: no profile
    finally:
        client.close()
    env = {"SHIPYARD_HOME": str(root / ".shipyard")}
    svc = from_environment(env, root)
    try:
        mv = svc.registry.resolve("m@1")
        base = baseline(svc, mv)
        assert base is not None
        now = time.time()
        # the server with drift on: one window a minute over the last 20 minutes, the last 5 shifted, with their
        # requests (10 rows each, payloads logged too: already in the windows, never counted again)
        entries: list[dict[str, Any]] = []
        for i in range(10):
            start = now - 1200 + i * 60
            shifted = i >= 10 - SHIFTED_WINDOWS
            rows = _rows(rng, ROWS, 1.5 if shifted else 0.0, 0.2 if shifted else 0.0)
            answers = model.predict(rows)
            entries.append(count_rows(base, "m", "1", rows, answers, start, start + 60).to_dict())
            for j in range(0, ROWS, 10):
                entries.append(_request(start + 1 + j / 10, rows[j:j + 10], answers[j:j + 10],
                                        outcome="error" if j == 0 else "ok"))
        old = _rows(rng, ROWS)
        entries.append(count_rows(base, "m", "1", old, model.predict(old), now - 2 * 86400,
                                  now - 2 * 86400 + 60).to_dict())  # two days ago: outside 24h, inside 7d
        other = dict(entries[0], profile="sha256:" + "0" * 64)  # a window counted on other bins
        entries.append(other)
        entries.append({**entries[1], "model": "other"})  # another model's request: not ours
        server = _record_server_run(svc, root, {"a.jsonl": _lines(entries[:120]), "b.jsonl": _lines(entries[120:])},
                                    {"shipyard.serve": "m@1", "shipyard.model": "m"})
        # what that server is still writing on this machine: one more window and a torn last line
        live = root / ".shipyard" / "inference-logs" / server
        live.mkdir(parents=True)
        rows = _rows(rng, 100)
        (live / "c.jsonl").write_bytes(_lines([count_rows(base, "m", "1", rows, model.predict(rows), now - 30,
                                                          now).to_dict()]) + b'{"request_id":"x","ti')
        # a server run with --no-drift and --log-payloads: 300 rows counted from its payloads
        payload = _rows(rng, 300)
        _record_server_run(svc, root, {"p.jsonl": _lines([_request(now - 600 + k, payload[k * 30:(k + 1) * 30],
                                                                    model.predict(payload[k * 30:(k + 1) * 30]))
                                                           for k in range(10)])},
                           {"shipyard.serve": "m@1", "shipyard.model": "m"})
        hostile = root / "pod-logs"
        hostile.mkdir()
        good = _request(now - 100, rid="pod-1")
        bad_feature = dict(entries[0], inputs={"nope": {"bins": [1], "missing": 0}})
        (hostile / "pod.jsonl").write_bytes(
            b'{"a":"' + b"x" * (2 * 1024 * 1024) + b'"}\n' + b"{not json\n" + b"[1, 2]\n"
            + _lines([good, bad_feature, dict(entries[0], profile="sha256:" + "1" * 64)]) + b"[" * 100_000 + b"\n")
        (hostile / "link.jsonl").symlink_to(hostile / "pod.jsonl")  # a second look at the same file: skipped
        yield Project(root, env, base, now, server, hostile)
    finally:
        svc.close()


def _invoke(project: Project, *args: str) -> Any:
    return runner.invoke(app, ["monitor", *args], env=project.env, catch_exceptions=True)


def test_the_table_reads_every_log_once_and_flags_the_shifted_feature(project: Project) -> None:
    result = _invoke(project, "m@1", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    # 10 windows of 200 rows, the unpublished window of 100, 300 rows counted from the --no-drift server's payloads
    assert doc["rows"] == 10 * ROWS + 100 + 300 and doc["rows_from_payloads"] == 300
    assert doc["requests"]["logged"] == 10 * 20 + 10 and doc["requests"]["error"] == 10
    assert doc["requests"]["error_share"] == pytest.approx(10 / 210)
    assert doc["latency_ms"]["p50"] is not None and doc["latency_ms"]["p99"] >= doc["latency_ms"]["p50"]
    features = {f["feature"]: f for f in doc["features"]}
    assert features["x0"]["verdict"] == "drift" and features["x0"]["statistic"] == "psi"
    assert features["x1"]["verdict"] == "ok" and features["x2"]["verdict"] == "quality"
    assert features["x2"]["out_of_range"] == SHIFTED_WINDOWS * ROWS // 5
    assert features["y0"]["side"] == "outputs"
    skipped = doc["skipped"]
    assert skipped["torn_lines"] == 1 and skipped["windows_on_other_bins"] == 1
    assert skipped["outside_period"] == 1 and skipped["payload_rows_in_windows"] == 10 * (ROWS - 10)
    assert doc["verdict"] == "drift" and doc["report"] is None
    table = _invoke(project, "m@1")
    assert table.exit_code == 0
    lines = {ln.split("│")[1].strip(): [c.strip() for c in ln.split("│")[2:-1]] for ln in table.output.splitlines()
             if ln.count("│") == 9}
    assert lines["x0"][:1] == ["inputs"] and lines["x0"][3] == "drift" and lines["x2"][3] == "quality"
    assert "rows: 2400 in" in table.output and "300 of them counted from logged payloads" in table.output
    assert "1 torn last lines" in table.output


def test_fail_on_exits_with_its_own_code(project: Project) -> None:
    assert _invoke(project, "m@1", "--fail-on", "drift").exit_code == EXIT_DRIFT
    assert _invoke(project, "m@1", "--fail-on", "quality").exit_code == EXIT_QUALITY
    assert _invoke(project, "m@1", "--fail-on", "quality,drift").exit_code == EXIT_DRIFT
    assert _invoke(project, "m@1", "--fail-on", "quality", "--fail-on", "drift").exit_code == EXIT_DRIFT
    nothing = _invoke(project, "m@2", "--fail-on", "drift")  # a profile, but no traffic: not a pass
    assert nothing.exit_code == EXIT_NOTHING and "nothing to check: 0 rows of m@2" in nothing.output
    assert _invoke(project, "m@2").exit_code == 0  # without --fail-on it only reports
    typo = _invoke(project, "m@1", "--fail-on", "drfit")
    assert isinstance(typo.exception, InvalidInputError) and "drift, quality or both" in str(typo.exception)
    assert "16" in runner.invoke(app, ["monitor", "--help"], env=project.env).output


def test_no_profile_says_how_to_record_one(project: Project) -> None:
    result = _invoke(project, "m@3")
    assert isinstance(result.exception, NotFoundError)
    assert "log_model(..., reference=X_train)" in str(result.exception)


def test_since_leaves_out_what_is_older(project: Project) -> None:
    week = json.loads(_invoke(project, "m@1", "--since", "7d", "--json").output)
    assert week["rows"] == 10 * ROWS + 100 + 300 + ROWS  # the window of two days ago
    recent = json.loads(_invoke(project, "m@1", "--since", "15m", "--json").output)
    assert recent["rows"] == 5 * ROWS + 100 + 300  # windows ending in the last 15 minutes, the live one, payloads
    assert parse_since("30m") == 1800 and parse_since("7d") == 7 * 86400
    for wrong in ("24", "1w", "-1h", "0m", "999999d"):
        with pytest.raises(InvalidInputError, match="30m, 24h or 7d"):
            parse_since(wrong)


def test_hostile_logs_are_skipped_and_counted(project: Project) -> None:
    svc = project.services()
    try:
        mv = svc.registry.resolve("m@1")
        report = monitor(svc, mv, since="24h", logs=[project.hostile], now=project.now)
    finally:
        svc.close()
    # the huge line, the line that is not JSON, the list, the window with a feature the reference lacks, the
    # deeply nested line; a window on other bins apart; the link never followed
    assert report.skipped.bad == 5 and report.skipped.other_bins == 2 and report.skipped.files == 1
    assert len(report.requests) == 10 * 20 + 10 + 1  # the pod's one good request


def test_the_same_rows_given_twice_count_once(project: Project, tmp_path: Path) -> None:
    svc = project.services()
    try:
        mv = svc.registry.resolve("m@1")
        first = monitor(svc, mv, now=project.now)
        again = monitor(svc, mv, logs=[project.root / ".shipyard" / "inference-logs" / project.server_run],
                        now=project.now)
    finally:
        svc.close()
    assert again.rows == first.rows and again.skipped.duplicate >= 1


def test_payloads_become_windows_by_the_minute() -> None:
    """A source without drift windows: its payloads are counted with count_rows, one window per minute."""
    from shipyard.adapters.monitoring.bins import baseline_of
    from shipyard.adapters.monitoring.sketches import build_profile

    base = baseline_of(build_profile(np.arange(1000.0).reshape(500, 2)), "sha256:" + "a" * 64)
    reader = LogReader(base, "m", "1", Period(0.0, 1000.0), count_payloads(base, "m", "1"))
    rows = [[float(i), 2.0 * i] for i in range(10)]
    entries = [{"time": 10.0 * k, "model": "m", "version": "1", "latency_ms": 1, "outcome": "ok", "inputs": rows,
                "outputs": [0] * 10} for k in range(12)]
    entries.append({"time": 5.0, "model": "m", "version": "1", "latency_ms": 1, "outcome": "ok",
                    "inputs": [[1.0]]})  # narrower than the reference: bad
    reader.read("f", _lines(entries))
    reader.finish()
    assert [w.rows for w in reader.windows] == [60, 60] and reader.payload_rows == 120
    assert reader.skipped.bad == 1 and len(reader.requests) == 13


def test_categories_are_counted_from_payloads_with_their_unseen_values() -> None:
    from shipyard.adapters.monitoring.bins import baseline_of
    from shipyard.adapters.monitoring.sketches import build_profile

    reference = [["red", float(i % 10)] for i in range(700)] + [["blue", float(i % 10)] for i in range(300)]
    base = baseline_of(build_profile(reference), "sha256:" + "c" * 64)
    reader = LogReader(base, "m", "1", Period(0.0, 1000.0), count_payloads(base, "m", "1"))
    rows = [["purple", 1.0]] * 50 + [["red", 2.0]] * 50 + [[None, 3.0]] * 10
    reader.read("f", _lines([{"time": 1.0, "model": "m", "version": "1", "latency_ms": 1, "outcome": "ok",
                              "inputs": rows}]))
    reader.finish()
    [window] = reader.windows
    color = window.inputs["x0"]
    assert (color.unseen, color.missing, window.rows) == (50, 10, 110)
    from shipyard.core.monitoring.drift import JS, assess

    first = assess(base, window)[0]
    assert first.statistic == JS and first.verdict == "drift" and first.quality_issue  # half of them unseen


def test_a_damaged_stored_log_is_left_out_and_said(project: Project) -> None:
    """Runs last in this module: it records one more server run, whose log is then damaged in the store."""
    svc = project.services()
    try:
        mv = svc.registry.resolve("m@1")
        before = monitor(svc, mv, now=project.now)
        rows = np.zeros((ROWS, 3))
        window = count_rows(project.base, "m", "1", rows, None, project.now - 60, project.now - 30).to_dict()
        run_id = _record_server_run(svc, project.root, {"d.jsonl": _lines([window])}, {"shipyard.model": "m"})
        [artifact] = svc.tracker.get_run(run_id).artifacts
        stored = project.root / ".shipyard" / "objects" / "sha256" / artifact.digest.hex[:2] / artifact.digest.hex[2:]
        stored.chmod(0o644)
        stored.write_bytes(stored.read_bytes().replace(b'"rows":200', b'"rows":999'))
        after = monitor(svc, mv, now=project.now)
    finally:
        svc.close()
    assert after.rows == before.rows and after.skipped.files == before.skipped.files + 1
    assert any("is corrupt" in note for note in after.notes)


def test_many_windows_are_added_up_in_pairs_not_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    from shipyard.adapters.monitoring.bins import baseline_of
    from shipyard.adapters.monitoring.sketches import build_profile
    from shipyard.core.monitoring import logs

    monkeypatch.setattr(logs, "MAX_WINDOWS", 8)
    base = baseline_of(build_profile(np.arange(1000.0).reshape(500, 2)), "sha256:" + "d" * 64)
    reader = LogReader(base, "m", "1", Period(0.0, 1000.0), count_payloads(base, "m", "1"))
    windows = [count_rows(base, "m", "1", np.full((3, 2), float(i)), None, float(i), i + 1.0).to_dict()
               for i in range(20)]
    reader.read("f", _lines(windows))
    reader.finish()
    assert len(reader.windows) <= 8 and sum(w.rows for w in reader.windows) == 60
    assert reader.windows[0].start == 0.0 and reader.windows[-1].end == 20.0
