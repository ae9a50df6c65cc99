"""``shipyard demo``: headings in order and coherent (the parts, the pipeline's three steps under part 2),
each line under its heading, class names everywhere, per-fold scores logged as steps of their own metric; a
second demo adds versions and leaves the first's alone; a corrupt object fails ``store verify``.

The demo takes most of a minute: it runs once for this module (``first_demo``) and the tests read what it left,
in file order on one worker: the output's checks, then a second demo in the same folder, then a corrupt object
(put back afterwards).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from shipyard.interfaces.cli.demo import PARTS, STEPS
from shipyard.wiring import from_environment
from tests.conftest import cli_env, without_torch
from tests.conftest import shipyard as run_cli

CLASSES = ("setosa", "versicolor", "virginica")


pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]  # one demo for the module: one worker


@dataclass(frozen=True)
class Demo:
    folder: Path
    env: dict[str, str]
    done: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def first_demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    folder = tmp_path_factory.mktemp("demo")
    env = without_torch(cli_env(SHIPYARD_HOME=str(folder / ".shipyard")))
    done = run_cli("demo", env={**env, "COLUMNS": "80"}, cwd=folder)  # every heading whole on 80 columns
    return Demo(folder, env, done)


def test_demo_output_follows_its_headings_and_logs_fold_scores_apart(first_demo: Demo) -> None:
    done, env, tmp_path = first_demo.done, first_demo.env, first_demo.folder
    assert "recording in" not in done.stderr  # the demo says where it records, in its own words
    lines = done.stdout.splitlines()
    assert "".join(done.stdout.split()).startswith(f"everythingthedemorecordsgoesto{tmp_path / '.shipyard'}")

    def at(text: str) -> int:
        found = [i for i, line in enumerate(lines) if text in line]
        assert len(found) == 1, (text, found)
        return found[0]

    headings = [at(PARTS[0]), at(PARTS[1]), *(at(s) for s in STEPS[:4]), at(PARTS[2].format(ref="iris@staging"))]
    part4 = [at(PARTS[3].format(ref="iris@staging")), at(STEPS[4].format(ref="iris@staging")), at(STEPS[5])]
    # 2d: the first run (C 1.0) and the re-run (C 0.5) side by side, newest first, with their accuracy
    exp_rows = [[c.strip() for c in line.split("│")[1:-1]] for line in lines[headings[5]:headings[6]]
                if line.startswith("│")]
    header = next(line for line in lines[headings[5]:headings[6]] if line.startswith("┃"))
    assert "train.C" in header and "accuracy" in header, header
    c_at = [c.strip() for c in header.split("┃")[1:-1]].index("train.C")
    assert [row[c_at] for row in exp_rows] == ["0.5", "1.0"], exp_rows
    part5 = at(PARTS[4].format(ref="iris@staging"))
    part6 = at(PARTS[5].format(ref="iris@staging"))
    part7 = at(PARTS[6].format(ref="iris@staging"))
    assert [*headings, *part4, part5, part6, part7] == sorted([*headings, *part4, part5, part6, part7])
    assert len([line for line in lines if line.startswith("──")]) == 7  # one rule per part, no more
    # part 7: live PSI from the server's /metrics, low for traffic like the training data, drift for petal length
    # once it moved; then the monitor's table (x2 drifted, the rest not) and the report's path, which exists
    live = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.split("│")[1:-1]]
                                              for line in lines[part7:] if line.startswith("│ x"))
            if " " in cells[0]}  # "x2 petal length": the live table (the monitor's says x2)
    assert list(live) == ["x0 sepal length", "x1 sepal width", "x2 petal length", "x3 petal width"], live
    assert all(float(before) < 0.2 for before, _ in live.values()), live  # like the training data
    assert [after.endswith("drift") for _, after in live.values()] == [False, False, True, False], live
    table = {cells[0]: cells[3] for cells in ([c.strip() for c in line.split("│")[1:-1]]
                                              for line in lines[part7:] if line.startswith("│ x"))
             if " " not in cells[0]}
    # (on 80 columns the side and unseen columns are hidden: the verdict is the fourth; x2's values are past the
    # reference's range too, a data-quality issue)
    assert table == {"x0": "ok", "x1": "ok", "x2": "drift, quality", "x3": "ok"}, table
    report = tmp_path / ".shipyard" / "demo" / "monitoring-report.html"
    assert f"opensoffline):{report}" in "".join("".join(lines[part7:]).split()) and report.is_file()
    # part 6: signed and verified with the demo's key; the scan, offline here, is "not checked", never clean; the
    # default policy denies production and says why
    six = "".join("".join(lines[part6:]).split())
    assert "signediris@1bythekey" in six and "verified:" in six, six
    assert "NOTCHECKED:" in six or "packagescheckedagainst" in six, six
    assert "policydeny:promoteiris@1toproduction" in six and "signed│pass" in six and "tostaging:allow" in six, six
    # part 5: the bad version rolled back by a model rule (it never errs), the good one promoted
    verdicts = [line.split(";")[0] for line in lines[part5:] if line.startswith(("rolled back:", "promoted "))]
    assert [v.split(":")[0] for v in verdicts] == ["rolled back", "promoted from iris@1"]
    # the good one goes to production through git: committed and pushed, then the alias moved
    tail = "".join("".join(lines[part5:]).split())  # long lines wrap on 80 columns
    assert re.search(r"promotedfromiris@1;committed[0-9a-f]{12}tomainof\S+gitops\.git;iris@production->iris@3",
                     tail), tail
    assert "Shipyard-Version:3" in tail and "Shipyard-Model:iris" in tail
    why = next(line for line in lines[part5:] if line.startswith("rolled back:")).split()[2]
    assert why in ("disagreement", "psi")
    # part 4: the iris version passes in a new environment; the scaler passes, then fails with tinypkg 2.0
    verdicts = [line.split()[0] for line in lines[part4[0]:part5] if line.startswith(("pass ", "FAIL "))]
    assert verdicts == ["pass", "pass", "FAIL"]
    assert "3 of 3 golden examples differ" in done.stdout and "shipyard build iris@staging" in done.stdout
    # what the param change re-runs is said under its own heading, before the stages run
    will_run = [i for i, line in enumerate(lines) if " will run: " in line]
    first_run_after = next(i for i, line in enumerate(lines) if i > headings[4] and "▶ running" in line)
    assert [lines[i].split()[0] for i in will_run] == ["train", "evaluate"]
    assert all(headings[4] < i < first_run_after for i in will_run)
    # predictions are class names in part 1 and in part 3, never bare indices
    for start, end in ((headings[0], headings[1]), (headings[-1], part4[0])):
        rows = [[c.strip() for c in line.split("│")] for line in lines[start:end] if line.startswith("│")]
        predicted = [cells[2] for cells in rows if re.fullmatch(r"\[?[0-9., ]+\]?", cells[1])]
        assert len(predicted) == 3 and set(predicted) <= set(CLASSES), predicted

    # per-fold scores are steps of their own metric; cv_accuracy is their mean, logged once
    run = next(r for r in json.loads(run_cli("runs", "list", "--json", env=env).stdout) if r["name"] == "demo-iris")
    svc = from_environment(env, tmp_path)
    try:
        folds = svc.meta.metric_history(run["id"], "fold_accuracy")
        cv = svc.meta.metric_history(run["id"], "cv_accuracy")
    finally:
        svc.close()
    assert [m.step for m in folds] == [0, 1, 2, 3, 4]
    assert len(cv) == 1 and cv[0].value == pytest.approx(sum(m.value for m in folds) / 5)


def test_demo_twice_makes_a_new_version_and_leaves_the_old_one(first_demo: Demo) -> None:
    env, folder = first_demo.env, first_demo.folder
    assert "iris@1" in first_demo.done.stdout and "iris@staging" in first_demo.done.stdout
    v1 = json.loads(run_cli("models", "show", "iris@1", "--json", env=env).stdout)
    second = run_cli("demo", env=env, cwd=folder)
    assert "restored from cache" in second.stdout  # part 2: the example pipeline, seen before
    versions = json.loads(run_cli("models", "versions", "iris", "--json", env=env).stdout)
    # each demo registers one version in part 1 (staging) and two in part 5 (rolled out: one rolled back,
    # one promoted to production)
    assert [v["version"] for v in versions] == [1, 2, 3, 4, 5, 6]
    assert v1.pop("trust") is None  # show adds the trust decision in force: none, scikit-learn types only
    assert v1.pop("trust_by_others") is None  # and the newest decision of others, which does not count
    assert set(v1.pop("signed")) == {"signed", "verified", "key", "reason"}  # and its signature's state
    v1.pop("scan")  # and its newest vulnerability scan's verdict (None: never scanned)
    assert versions[0] == {**v1, "aliases": []}  # only the alias moved away from version 1
    assert [v["aliases"] for v in versions] == [[], [], [], ["staging"], [], ["production"]]
    everything = json.loads(run_cli("runs", "list", "--json", env=env).stdout)
    assert {r["status"] for r in everything} == {"finished"}
    assert sorted({r["name"] for r in everything if r["experiment"] == "pipeline"}) == ["evaluate", "prepare", "train"]
    runs = [r for r in everything if r["experiment"] == "demo" and r["name"] == "demo-iris"]
    assert len(runs) == 2
    assert runs[0]["metrics"]["accuracy"] > 0.8
    shown = json.loads(run_cli("runs", "show", runs[0]["id"][:8], "--json", env=env).stdout)
    assert shown["artifacts"][0]["path"] == "confusion_matrix.json"
    assert json.loads(run_cli("store", "verify", "--json", env=env).stdout)["ok"]


def test_store_verify_fails_on_a_corrupt_object(first_demo: Demo) -> None:
    victim = next(p for p in (first_demo.folder / ".shipyard" / "objects" / "sha256").rglob("*") if p.is_file())
    intact, mode = victim.read_bytes(), victim.stat().st_mode
    victim.chmod(0o644)
    victim.write_bytes(intact + b"!")
    try:
        done = run_cli("store", "verify", env=first_demo.env, check=False)
        assert done.returncode == 5 and "failed verification (1 corrupt" in done.stderr
        assert f"corrupt sha256:{victim.parent.name}{victim.name}" in done.stdout
    finally:
        victim.write_bytes(intact)
        victim.chmod(mode)


def test_the_install_hint_keeps_its_extra(tmp_path: Path) -> None:
    """Without the serve extra the demo names it; Rich must not read ``[serve]`` as markup."""
    code = ("import sys\nsys.modules['uvicorn'] = None  # as if the serve extra were not installed\n"
            "from shipyard.interfaces.cli.demo import serve_demo\n"
            "assert serve_demo('iris@staging', [], []) is False\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env=cli_env(SHIPYARD_HOME=str(tmp_path / ".shipyard")), check=False)
    assert done.returncode == 0, done.stderr
    assert "pip install 'shipyard[serve]'" in done.stdout
