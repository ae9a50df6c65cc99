"""Tables fit the terminal without losing identifiers or splitting words, say what they hide, and a metric logged at
several steps reads as a series, in the same words everywhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sklearn.dummy import DummyClassifier

import shipyard
from shipyard.config import Settings
from shipyard.interfaces.cli.output import id_width
from shipyard.wiring import build
from tests.conftest import cli_env
from tests.conftest import shipyard as run_cli

REASON = "C=1.0 LogisticRegression beats the baseline, a reason long enough that the history table wraps it"
METRICS = ["accuracy", "f1_macro", "loss", "test_rows", "train_accuracy", "cv_accuracy", "fold_accuracy"]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four runs logging seven metrics (one at five steps), two versions of a model, an alias moved with a reason."""
    root = tmp_path_factory.mktemp("tables")
    home = root / ".shipyard"
    svc = build(Settings(home=home, db_url=f"sqlite:///{home / 'shipyard.db'}", store_path=home / "objects",
                         actor="tester@ci"), root)
    try:
        for name in ("prepare", "a-rather-long-training-run-name", "iris-pipeline@production", "evaluate"):
            run = svc.tracker.start_run(name=name)
            svc.tracker.log_metrics(run.id, {"accuracy": 0.9, "f1_macro": 0.8, "loss": 0.1, "test_rows": 45})
            if name != "prepare":
                svc.tracker.log_metrics(run.id, {"train_accuracy": 0.99})
            if name == "evaluate":
                for fold, score in enumerate((0.97, 0.95, 0.96, 0.98, 1.0)):
                    svc.tracker.log_metrics(run.id, {"fold_accuracy": score}, step=fold)
                svc.tracker.log_metrics(run.id, {"cv_accuracy": 0.972})
            svc.tracker.end_run(run.id)
        folder = root / "saved"
        shipyard.save_model(DummyClassifier().fit([[0], [1]], [0, 1]), folder)
        metrics = svc.tracker.get_run(run.id).metrics  # as log_model records them: the run's latest values
        svc.registry.register("iris-classifier", folder, run_id=run.id, metrics=metrics)
        svc.registry.register("iris-classifier", folder, run_id=run.id, metrics=metrics)
        svc.registry.set_alias("iris-classifier", "production", 1, REASON)
    finally:
        svc.close()
    return home


def sy(home: Path, columns: int, *args: str) -> str:
    return run_cli(*args, env=cli_env(SHIPYARD_HOME=str(home), COLUMNS=str(columns)), cwd=home.parent).stdout


def test_the_shortest_unique_prefix_is_at_least_eight_characters() -> None:
    assert id_width(["a" * 32, "b" * 32]) == 8
    assert id_width(["0123456789ab" + "0" * 20, "0123456789ac" + "0" * 20, "f" * 32]) == 12
    assert id_width([]) == 8


@pytest.mark.parametrize("columns", [80, 200])
@pytest.mark.parametrize("args", [("runs", "list"), ("models", "list"), ("models", "versions", "iris-classifier"),
                                  ("models", "history"), ("models", "show", "iris-classifier@1")])
def test_every_table_fits_the_terminal(home: Path, columns: int, args: tuple[str, ...]) -> None:
    text = sy(home, columns, *args)
    assert text and max(len(line) for line in text.splitlines()) <= columns
    assert "…" not in text  # nothing cut off


@pytest.mark.parametrize("columns", [80, 200])
def test_run_ids_in_the_list_are_whole_prefixes_that_runs_show_resolves(home: Path, columns: int) -> None:
    listed = sy(home, columns, "runs", "list")
    ids = re.findall(r"^│ ([0-9a-f]+) ", listed, flags=re.MULTILINE)
    assert len(ids) == 4 and all(len(i) >= 8 for i in ids)
    for run_id in ids:
        assert run_id in sy(home, columns, "runs", "show", run_id).splitlines()[0]


def test_a_metric_logged_at_several_steps_is_marked_as_a_series(home: Path) -> None:
    listed = sy(home, 200, "runs", "list")
    assert "1 (last of 5)" in listed
    assert "0.9 (last" not in listed  # single values stay plain
    evaluate = next(r for r in shipyard_runs(home) if r["name"] == "evaluate")
    shown = sy(home, 200, "runs", "show", evaluate["id"])
    row = next(line for line in shown.splitlines() if "fold_accuracy" in line)
    assert [c.strip() for c in row.strip("│ ").split("│")] == ["fold_accuracy", "1", "0.95", "1", "5"]
    # one wording everywhere: the version's metrics come from that run
    assert "1 (last of 5)" in sy(home, 200, "models", "versions", "iris-classifier")
    assert "1 (last of 5)" in sy(home, 200, "models", "show", "iris-classifier@1")
    assert "series of" not in sy(home, 200, "models", "show", "iris-classifier@1")


def test_the_history_keeps_its_reason_column_at_80_columns(home: Path) -> None:
    narrow = sy(home, 80, "models", "history")
    assert "reason" in narrow.splitlines()[1]
    assert "iris-classifier@production" in narrow
    words = " ".join(line.split("│")[-2].strip() for line in narrow.splitlines() if line.count("│") > 2)
    assert REASON in " ".join(words.split())
    assert "hidden to fit 80 columns" in narrow  # what was dropped is said, not silent
    wide = sy(home, 200, "models", "history")
    assert "hidden" not in wide and "- → 1" in wide


def shipyard_runs(home: Path) -> list[dict[str, str]]:
    import json

    return list(json.loads(run_cli("runs", "list", "--json", env=cli_env(SHIPYARD_HOME=str(home)),
                                   cwd=home.parent).stdout))


def test_a_prefix_of_several_runs_is_one_line_naming_them_and_the_list_widens_its_ids(tmp_path: Path) -> None:
    from shipyard.core.lineage.records import RunRecord, RunStatus

    home = tmp_path / ".shipyard"
    svc = build(Settings(home=home, db_url=f"sqlite:///{home / 'shipyard.db'}", store_path=home / "objects",
                         actor="tester@ci"), tmp_path)
    try:
        for run_id in ("0123456789a" + "0" * 21, "0123456789b" + "0" * 21):
            svc.meta.create_run(RunRecord(id=run_id, name="twin", experiment="default", status=RunStatus.FINISHED,
                                          start_time=1.0, end_time=2.0, user="u", host="h", pid=1))
    finally:
        svc.close()
    env = cli_env(SHIPYARD_HOME=str(home), COLUMNS="80")
    done = run_cli("runs", "show", "01234567", env=env, cwd=tmp_path, check=False)
    assert done.returncode == 2
    assert done.stderr == ("error: run id prefix '01234567' matches several runs (0123456789a0, 0123456789b0): "
                           "give more characters\n")
    listed = run_cli("runs", "list", env=env, cwd=tmp_path).stdout
    assert sorted(re.findall(r"^│ ([0-9a-f]+) ", listed, flags=re.MULTILINE)) == ["0123456789a", "0123456789b"]
    assert "twin" in run_cli("runs", "show", "0123456789b", env=env, cwd=tmp_path).stdout


def table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(("┃", "│"))]


def headers(text: str) -> list[str]:
    lines = text.splitlines()
    top = next(i for i, line in enumerate(lines) if line.startswith("┏"))
    assert lines[top + 2].startswith("┡"), "a header took more than one line"
    return [h.strip() for h in lines[top + 1].strip("┃").split("┃")]


def hidden(text: str) -> list[str]:
    flat = " ".join(text.split())
    found = re.search(r"\(hidden to fit \d+ columns: ([^;]*);", flat)
    return found.group(1).split(", ") if found else []


@pytest.mark.parametrize("columns", [80, 120, 200, 300])
def test_every_metric_is_shown_or_named_as_hidden_most_common_first(home: Path, columns: int) -> None:
    listed = sy(home, columns, "runs", "list")
    shown = [h for h in headers(listed) if h in METRICS]
    assert shown == METRICS[:len(shown)]  # the ones every run has first, then by name
    assert sorted(shown + [h for h in hidden(listed) if h in METRICS]) == sorted(METRICS)
    if columns == 300:
        assert shown == METRICS and "hidden" not in listed
    if columns == 80:
        assert len(shown) >= 2 and "--metric KEY" in " ".join(listed.split())


def test_metric_picks_the_metric_columns_in_its_order(home: Path) -> None:
    listed = sy(home, 200, "runs", "list", "--metric", "fold_accuracy", "--metric", "loss")
    assert headers(listed)[-2:] == ["fold_accuracy", "loss"]
    assert not set(METRICS) - {"fold_accuracy", "loss"} & set(headers(listed))
    done = run_cli("runs", "list", "--metric", "fold_acc", env=cli_env(SHIPYARD_HOME=str(home)), cwd=home.parent,
                   check=False)
    assert done.returncode == 2
    assert done.stderr == "error: no listed run logged a metric 'fold_acc' (did you mean 'fold_accuracy'?)\n"
    versions = sy(home, 80, "models", "versions", "iris-classifier", "--metric", "fold_accuracy")
    assert headers(versions)[-1] == "fold_accuracy" and "accuracy" not in headers(versions)


@pytest.mark.parametrize("columns", [80, 100, 120, 200])
@pytest.mark.parametrize("args", [("runs", "list"), ("models", "list"), ("models", "versions", "iris-classifier"),
                                  ("models", "history"), ("runs", "list", "-m", "cv_accuracy", "-m", "train_accuracy")])
def test_headers_timestamps_and_words_are_never_split(home: Path, columns: int, args: tuple[str, ...]) -> None:
    text = sy(home, columns, *args)
    for header in headers(text):
        assert header in {"run", "name", "status", "started", "duration", "model", "latest", "aliases", "created",
                          "version", "flavor", "artifacts", "registered", "when", "who", "action", "ref", "change",
                          "reason", *METRICS}
    assert not re.findall(r"\d{4}-\d\d-\d\d(?! \d\d:\d\d)", text)  # a date always has its time on its line
    assert not re.findall(r"^│ *\d\d:\d\d", text, flags=re.MULTILINE)
    if args[:2] == ("runs", "list") and columns >= 100:
        assert "iris-pipeline@production" in text  # a name is wrapped at spaces, never cut mid-word
    if args == ("models", "history"):
        assert "LogisticRegression" in text


def test_the_history_reason_keeps_its_words_at_80_and_120_columns(home: Path) -> None:
    for columns in (80, 120):
        text = sy(home, columns, "models", "history")
        reasons = " ".join(line.split("│")[-2].strip() for line in table_lines(text) if line.count("│") > 2)
        assert REASON in " ".join(reasons.split())
        assert "LogisticRegression" in text
    assert "when" in headers(sy(home, 120, "models", "history"))


def test_a_series_reads_the_same_in_every_table(home: Path) -> None:
    for args in (("runs", "list"), ("models", "versions", "iris-classifier"), ("models", "show", "iris-classifier@2")):
        assert "1 (last of 5)" in sy(home, 300, *args)


PIPELINE = """\
version: 1
stages:
  one:
    cmd: python -c "open('one.txt', 'w').write(open('data/raw/a.txt').read())"
    deps: [data/raw]
    outs: [one.txt]
  two:
    cmd: python -c "open('two.txt', 'w').write(open('one.txt').read() * 2)"
    deps: [one.txt]
    outs: [two.txt]
"""


@pytest.mark.parametrize("columns", [80, 200])
def test_counts_agree_with_their_nouns_empty_columns_go_and_the_gc_summary_wraps(tmp_path: Path, columns: int) -> None:
    (tmp_path / "data" / "raw").mkdir(parents=True)
    (tmp_path / "data" / "raw" / "a.txt").write_text("a\n")
    (tmp_path / "shipyard.yaml").write_text(PIPELINE)
    env = cli_env(SHIPYARD_HOME=str(tmp_path / ".shipyard"), COLUMNS=str(columns))

    def sy_here(*args: str) -> str:
        text = run_cli(*args, env=env, cwd=tmp_path).stdout
        assert max(len(line) for line in text.splitlines()) <= columns
        return text

    assert sy_here("data", "add", "data/raw").startswith("data/raw: 1 file, ")
    sy_here("run", "one")
    ran = sy_here("run")
    assert headers(ran) == ["stage", "result", "time", "run"]  # detail is empty in every row: left out
    assert "1 stage up to date (one)" in ran.splitlines()  # (then the outputs .gitignore now lists)
    assert sy_here("run").splitlines()[-1] == "all 2 stages up to date (one, two): nothing to run"
    gc = sy_here("data", "gc", "--dry-run")
    assert gc.startswith("nothing to remove, kept ") and "searched the workspace's lock" in gc
    assert len(gc.splitlines()) >= 2  # what was kept and what was searched: separate lines, each wrapped


def test_a_table_leaves_out_columns_empty_in_every_row_and_never_wraps_a_status(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from shipyard.interfaces.cli import output as out

    monkeypatch.setenv("COLUMNS", "100")
    out.table(None, [out.Col("stage", ident=True), "output", out.Col("verdict", ident=True), "detail", "note"],
              [("train", "model/model.skops", "same predictions", "bytes differ; the re-trained model agrees on "
                "every golden example: 30 golden example(s): all agree, within the tolerance asked for", ""),
               ("evaluate", "metrics.json", "metrics within tolerance", "accuracy 0.9667 vs 0.9667", "")])
    text = capsys.readouterr().out
    assert headers(text) == ["stage", "output", "verdict", "detail"]
    assert "same predictions" in text and "metrics within tolerance" in text
    assert max(len(line) for line in text.splitlines()) <= 100


@pytest.mark.parametrize("columns", [60, 80, 200])
def test_a_long_heading_is_wrapped_not_cut(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                           columns: int) -> None:
    from shipyard.interfaces.cli import output as out

    title = "Part 1/3 · tracking and registry: track a run, register the model, load it back by alias"
    monkeypatch.setenv("COLUMNS", str(columns))
    out.heading(title)
    text = capsys.readouterr().out
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= columns
    assert title in " ".join(line.strip("─ ") for line in text.splitlines()).strip()
    assert "─" in text


def test_a_name_or_key_with_rich_markup_is_shown_as_written(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A run named ``oops [/bold]`` made every ``runs list`` a MarkupError traceback; ``[bold]x[/]`` showed as x."""
    from rich.cells import cell_len

    from shipyard.interfaces.cli import output as out

    monkeypatch.setenv("COLUMNS", "40")
    out.table(None, [out.Col("run", ident=True), "name", out.Col("[/dim]", drop=1), out.Col("漢字漢字", ident=True)],
              [("1", "oops [/bold]", "x", "名前"), ("2", "[bold]evil[/]", "y", "名前名前")])
    text = capsys.readouterr().out
    assert "oops [/bold]" in text and "[bold]evil[/]" in text and "[/dim]" in text
    assert max(cell_len(line) for line in text.splitlines()) <= 40  # a wide character takes two cells
    assert "名前名前" in text  # an identifier in wide characters is measured in cells, never folded


def test_runs_show_and_data_add_print_a_name_with_markup_as_written(tmp_path: Path) -> None:
    """``runs show`` of a run named ``oops [/bold]`` and ``data add '[/x]'`` (a file ``x]`` in a folder ``[``)
    were MarkupError tracebacks."""
    home = tmp_path / ".shipyard"
    svc = build(Settings(home=home, db_url=f"sqlite:///{home / 'shipyard.db'}", store_path=home / "objects",
                         actor="tester@ci"), tmp_path)
    try:
        run = svc.tracker.start_run(name="oops [/bold]")
        svc.tracker.end_run(run.id)
    finally:
        svc.close()
    assert sy(home, 80, "runs", "show", run.id).splitlines()[0] == f"oops [/bold]  {run.id}"
    (tmp_path / "[").mkdir()
    (tmp_path / "[" / "x]").write_text("1\n")
    added = run_cli("data", "add", "[/x]", env=cli_env(SHIPYARD_HOME=str(home)), cwd=tmp_path)
    assert added.stdout.startswith("[/x]: 1 file")


def test_an_unknown_metric_names_at_most_ten_keys() -> None:
    """--metric with a key no run logged listed every key: 200 of them in one error line."""
    from shipyard.errors import InvalidInputError
    from shipyard.interfaces.cli.output import metric_columns

    with pytest.raises(InvalidInputError) as caught:
        metric_columns([{f"m{i:03}": 1.0 for i in range(200)}], ["[/x]"])
    assert str(caught.value) == ("no listed run logged a metric '[/x]'; they have m000, m001, m002, m003, m004, m005, "
                                 "m006, m007, m008, m009 and 190 more (--json lists them)")


def test_columns_zero_still_prints(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """COLUMNS=0 made Rich's width 0: every table and message vanished and the command still succeeded."""
    from shipyard.interfaces.cli import output as out

    monkeypatch.setenv("COLUMNS", "0")
    out.table(None, [out.Col("run", ident=True), "name"], [("abc12345", "kept")])
    out.console().print("recorded in shipyard.lock")
    text = capsys.readouterr().out
    assert "abc12345" in text and "kept" in text and "recorded in shipyard.lock" in text
