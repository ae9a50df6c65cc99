"""``shipyard demo``: the foundation, the pipeline and the model server in one go, on scikit-learn's iris data.

Seven parts, each under its own heading: 1/7 tracking and the registry, 2/7 a pipeline (three runs of it,
each under a sub-heading), 3/7 serving, 4/7 environments (verify), 5/7 a local rollout (one version rolled
back, one promoted), 6/7 governance (signed, scanned, and the policy's decision), 7/7 monitoring (live drift of
shifted traffic, the drift table and the HTML report). The README's tour names them the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from rich.markup import escape

import shipyard
from shipyard.errors import MissingExtraError
from shipyard.interfaces.cli import output as out

if TYPE_CHECKING:
    from shipyard.config import Settings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iris-pipeline"
# each heading fits an 80-column terminal (a Rich rule cuts what does not)
PARTS = ("Part 1/7 · tracking and registry: a run, a version, an alias",
         "Part 2/7 · pipeline: prepare → train → evaluate, cached",
         "Part 3/7 · serving: serve {ref} and ask it",
         "Part 4/7 · environments: verify {ref} elsewhere, and an upgrade",
         "Part 5/7 · rollout: new versions against {ref}, judged live",
         "Part 6/7 · governance: {ref} signed, scanned, judged by policy",
         "Part 7/7 · monitoring: {ref} sees traffic drift away")
STEPS = ("2a. First run: every stage runs (or comes from the cache of an earlier demo)",
         "2b. Outputs deleted, as in a fresh clone: all restored from the cache",
         "2c. train.C set to 0.5: train and evaluate re-run (or come from the cache)",
         "2d. The pipeline runs side by side, as `shipyard exp show` prints them",
         "4a. {ref}'s golden examples in a new environment built from its lock",
         "4b. A model built on your team's package: verified, then with its next release")


def run_demo(name: str) -> None:
    try:
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
        from sklearn.model_selection import cross_val_score, train_test_split
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ModuleNotFoundError as exc:
        raise MissingExtraError("the demo", "sklearn") from exc

    from shipyard.wiring import make_home, settings_from_environment

    settings = settings_from_environment(anywhere=True)  # the demo makes its project here, as `init` would
    make_home(settings)
    c = out.console()
    c.print(f"[dim]everything the demo records goes to {escape(str(settings.home))}[/dim]")
    out.heading(PARTS[0])
    started = time.perf_counter()
    data = load_iris()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.3, random_state=42, stratify=data.target)
    params = {"C": 1.0, "max_iter": 200, "test_size": 0.3, "random_state": 42}

    with shipyard.start_run(name="demo-iris", experiment="demo") as run, tempfile.TemporaryDirectory() as tmp:
        shipyard.log_params(params)
        model = make_pipeline(StandardScaler(), LogisticRegression(C=params["C"], max_iter=params["max_iter"]))
        folds = cross_val_score(model, x_train, y_train, cv=5)
        for fold, score in enumerate(folds):  # one value per fold, as steps; cv_accuracy is their mean
            shipyard.log_metric("fold_accuracy", float(score), step=fold)
        shipyard.log_metric("cv_accuracy", float(folds.mean()))
        model.fit(x_train, y_train)
        predicted = model.predict(x_test)
        metrics = {"accuracy": accuracy_score(y_test, predicted),
                   "f1_macro": f1_score(y_test, predicted, average="macro")}
        shipyard.log_metrics(metrics)
        report = Path(tmp) / "confusion_matrix.json"
        report.write_text(json.dumps({"labels": list(data.target_names),
                                      "matrix": confusion_matrix(y_test, predicted).tolist()}))
        shipyard.log_artifact(report)
        version = shipyard.log_model(model, name, flavor="sklearn", examples=x_test[:5], reference=x_train,
                                     description="LogisticRegression on iris (shipyard demo)")
        shipyard.set_alias(name, "staging", version.version, reason="demo: newest model goes to staging")

    loaded = shipyard.load_model(f"{name}@staging")
    sample = x_test[:3]
    answers = loaded.predict(sample)

    out.table(f"run {run.id[:8]} ({run.name})", ["what", "value"], [
        ("params", ", ".join(f"{k}={v}" for k, v in params.items())),
        ("cv accuracy", f"{folds.mean():.3f} (mean of {len(folds)} folds)"),
        ("accuracy", f"{metrics['accuracy']:.3f}"),
        ("f1 (macro)", f"{metrics['f1_macro']:.3f}"),
        ("registered", f"{version.ref}  (artifacts {out.short(version.manifest_digest)}, "
                       f"environment {out.short(version.env_digest)})"),
        ("alias", f"{name}@staging → version {version.version}"),
    ])
    out.table(f"{name}@staging predicts", ["input (sepal/petal length, width)", "predicted", "true"],
              ((", ".join(f"{v:.1f}" for v in row), data.target_names[p], data.target_names[t])
               for row, p, t in zip(sample, answers, y_test[:3], strict=True)))
    c.print(f"part 1 done in {time.perf_counter() - started:.2f} s\n")
    started = time.perf_counter()
    run_pipeline_demo()
    c.print(f"part 2 done in {time.perf_counter() - started:.2f} s\n")
    started = time.perf_counter()
    if serve_demo(f"{name}@staging", [row.tolist() for row in x_test[:3]], [str(n) for n in data.target_names]):
        c.print(f"part 3 done in {time.perf_counter() - started:.2f} s\n")
    started = time.perf_counter()
    verify_demo(f"{name}@staging")
    c.print(f"part 4 done in {time.perf_counter() - started:.2f} s\n")
    started = time.perf_counter()
    out.heading(PARTS[4].format(ref=f"{name}@staging"))
    from shipyard.interfaces.cli.demo_rollout import rollout_demo

    if rollout_demo(name, f"{name}@staging", x_train, y_train, x_test):
        c.print(f"part 5 done in {time.perf_counter() - started:.2f} s\n")
    started = time.perf_counter()
    out.heading(PARTS[5].format(ref=f"{name}@staging"))
    from shipyard.interfaces.cli.demo_governance import governance_demo

    if governance_demo(f"{name}@staging"):
        c.print(f"part 6 done in {time.perf_counter() - started:.2f} s\n")
    started = time.perf_counter()
    out.heading(PARTS[6].format(ref=f"{name}@staging"))
    from shipyard.interfaces.cli.demo_monitoring import monitoring_demo

    if monitoring_demo(f"{name}@staging", x_train):
        c.print(f"part 7 done in {time.perf_counter() - started:.2f} s\n")
    c.print(f"Next: `shipyard build {name}@staging` (its container image: the build context, and the image where "
            f"Docker runs), `shipyard runs list`, `shipyard models history {name}`, "
            f"`git clone .shipyard/demo/gitops.git` (the GitOps commit), "
            f"`shipyard models lineage iris-pipeline`, `shipyard store verify`, `shipyard alerts render {name}`, "
            f"and the README's Governance and Monitoring sections.")


def run_pipeline_demo() -> None:
    """Part 2/3: the example pipeline, run, restored from cache, then partly re-run after a param change."""
    from shipyard.core.workspace.add import add
    from shipyard.interfaces.cli.pipeline import ConsoleEvents, show_outcomes
    from shipyard.wiring import open_pipeline, open_workspace, settings_from_environment

    c = out.console()
    settings = settings_from_environment()
    folder = settings.home / "demo" / "iris-pipeline"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(EXAMPLE, folder)
    local = replace(settings, root=folder)
    add(open_workspace(local), [folder / "data" / "raw"])

    def run() -> None:
        report = open_pipeline(local, os.environ, ConsoleEvents()).run()
        show_outcomes(report.outcomes)
        failed = [o.stage for o in report.outcomes if o.result in ("failed", "skipped", "killed")]
        if failed:
            from shipyard.errors import StageFailed

            raise StageFailed(f"the demo pipeline did not complete ({', '.join(failed)}): see the stage output above")

    out.heading(PARTS[1])
    c.print(f"example project copied to {folder}; data/raw recorded in its shipyard.lock")
    c.print(f"\n[bold]{STEPS[0]}")
    run()
    for produced in ("data/prepared", "models", "metrics"):
        shutil.rmtree(folder / produced, ignore_errors=True)
    c.print(f"\n[bold]{STEPS[1]}")
    run()
    params = folder / "params.yaml"
    params.write_text(params.read_text().replace("C: 1.0", "C: 0.5"))
    c.print(f"\n[bold]{STEPS[2]}")
    for status in open_pipeline(local, os.environ).status():
        if status.must_run:
            c.print(f"[yellow]{status.name}[/yellow] will run: {escape('; '.join(status.reasons))}")
    run()
    show_experiments(local)


def show_experiments(settings: Settings) -> None:
    """The two newest pipeline runs joined, as `shipyard exp show` prints them (a run whose stages all came
    from the cache is no pipeline run: a demo run again shows the first demo's)."""
    from shipyard.interfaces.cli.exp import show_table
    from shipyard.wiring import build
    from shipyard.wiring.experiments import experiments

    out.console().print(f"\n[bold]{STEPS[3]}")
    svc = build(settings)
    try:
        show_table(experiments(svc, limit=2))
    finally:
        svc.close()


def serve_demo(ref: str, rows: list[list[float]], classes: list[str]) -> bool:
    """Part 3/3: serve the registered model on 127.0.0.1 and send it a few requests; False if skipped."""
    import socket
    import threading
    import urllib.request

    c = out.console()
    out.heading(PARTS[2].format(ref=ref))
    try:
        import uvicorn

        from shipyard.interfaces.serving.app import create_app
        from shipyard.interfaces.serving.loading import load_slot
        from shipyard.interfaces.serving.router import Router
    except ModuleNotFoundError:
        c.print(escape("skipped: the model server needs `pip install 'shipyard[serve]'`"))
        return False
    svc = out.services()
    version = svc.registry.resolve(ref)
    app = create_app(Router(load_slot(svc.registry, version)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started and thread.is_alive():
            time.sleep(0.02)
        c.print(f"serving {version.ref} on http://127.0.0.1:{port} (Open Inference Protocol v2 and /predict)")
        answers = []
        for row in rows:
            body = json.dumps({"instances": [row]}).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=body,
                                             headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = json.loads(response.read())
                answers.append((row, answer["predictions"][0], response.headers["x-model-version"]))
        # the server answers class indices, as the model predicts them; shown by name, as in part 1
        out.table("POST /predict", ["instances", "predicted", "answered by version"],
                  ((json.dumps(r), classes[p], v) for r, p, v in answers))
        return True
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        svc.close()


TINYPKG = "FACTOR = {factor}\n\n\nclass Scaler:\n    def predict(self, rows):\n" \
          "        return [round(sum(row) * FACTOR, 6) for row in rows]\n"


def tiny_wheel(folder: Path, version: str, source: str) -> Path:
    """A one-module wheel (PEP 427) of ``tinypkg`` whose ``__init__.py`` is ``source``, standing in for a
    team's own package. Written byte for byte the same each time, so a second demo reuses its environments."""
    import base64
    import hashlib
    import zipfile

    info = f"tinypkg-{version}.dist-info"
    files = {"tinypkg/__init__.py": source.encode(),
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: tinypkg\nVersion: {version}\n".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: shipyard-demo\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n"}
    record = [f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}"
              for n, d in files.items()] + [f"{info}/RECORD,,"]
    files[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = folder / f"tinypkg-{version}-py3-none-any.whl"
    if not path.exists():
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in files.items():
                zf.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), data)
    return path


def verify_demo(ref: str) -> None:
    """Part 4/4: ``verify`` of the iris version in a new environment, then a team package's upgrade that
    changes a model's answers, caught by ``verify --with``."""
    import importlib
    import sys
    import zipfile

    from shipyard.interfaces.cli.verify import verify_one
    from shipyard.wiring import VerifyRequest, settings_from_environment

    c = out.console()
    out.heading(PARTS[3].format(ref=ref))
    folder = settings_from_environment().home / "demo" / "environments"
    wheels = folder / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    shown = os.path.relpath(wheels) if wheels.is_relative_to(Path.cwd()) else str(wheels)  # as a user types it
    v1 = tiny_wheel(wheels, "1.0", TINYPKG.format(factor=1.0))
    tiny_wheel(wheels, "2.0", TINYPKG.format(factor=1.1))  # the next release multiplies by 1.1: every answer changes
    c.print(f"\n[bold]{escape(STEPS[4].format(ref=ref))}")
    svc = out.services()
    try:
        verify_one(svc, ref, VerifyRequest(), as_json=False)
        site = folder / "site"  # tinypkg 1.0 "installed" for this process: importable, and in its fingerprint
        if not (site / "tinypkg").exists():
            zipfile.ZipFile(v1).extractall(site)
        sys.path.insert(0, str(site))
        importlib.invalidate_caches()
        tinypkg = importlib.import_module("tinypkg")
        with shipyard.start_run(name="demo-scaler", experiment="demo"):
            scaler = shipyard.log_model(tinypkg.Scaler(), "scaler", flavor="python", requirements=["tinypkg"],
                                        examples=[[1.0, 2.0], [3.0, 4.5], [0.5, 0.25]])
        c.print(f"\n[bold]{escape(STEPS[5])}")
        c.print(f"registered {scaler.ref}: tinypkg.Scaler (tinypkg 1.0; 1.0 and 2.0 are wheels in {escape(shown)})")
        checks = []
        for overrides in ((), ("tinypkg==2.0",)):
            c.print(f"$ shipyard verify {scaler.ref} {''.join(f'--with {o} ' for o in overrides)}"
                    f"--find-links {escape(shown)}")
            checks.append(verify_one(svc, scaler.ref, VerifyRequest(overrides, find_links=(wheels,)), as_json=False))
        if checks[0].passed and checks[1].verdict is not None and not checks[1].verdict.passed:
            c.print("tinypkg 2.0 changes what the model answers: `verify --with` caught it before any deploy "
                    "(in CI, its exit code 1 stops the upgrade)")
    finally:
        svc.close()
