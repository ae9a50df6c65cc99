"""One process of bench/autolog.py: the same scikit-learn fit, timed bare or under a tool's autolog.

    python autolog_fit.py MODE WORKLOAD FITS      MODE: bare | shipyard | shipyard-no-model | mlflow
                                                        | paired-shipyard | paired-mlflow (FITS pairs)

Prints one ``RESULT {json}`` line: the seconds (wall and CPU of the whole process, threads included) of
turning autolog on, of a first small fit (the store made, lazy imports), and of each timed fit.
Tracking goes where the environment says (SHIPYARD_HOME, MLFLOW_TRACKING_URI): a fresh folder per process.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def estimator(workload: str) -> Any:
    if workload == "gboost":
        from sklearn.ensemble import GradientBoostingClassifier

        return GradientBoostingClassifier(n_estimators=25, max_depth=3, random_state=0)
    if workload == "forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=15, max_depth=10, n_jobs=1, random_state=0)
    if workload == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=3000, C=10, tol=1e-8)
    raise SystemExit(f"unknown workload {workload!r}: gboost, forest or logreg")


def data(workload: str) -> tuple[Any, Any]:
    from sklearn.datasets import make_classification

    rows = {"gboost": 5_000, "forest": 20_000}.get(workload, 80_000)
    return make_classification(n_samples=rows, n_features=20, n_informative=10, random_state=0)


def timed(call: Any) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return time.perf_counter() - wall, time.process_time() - cpu


def paired(tool: str, workload: str, pairs: int) -> dict[str, Any]:
    """Fits with the tool's autolog on and off, alternating in this one process: each pair's two fits see the
    same load, so their difference is the overhead even on a busy machine."""
    if tool == "shipyard":
        import shipyard

        def switch(on: bool) -> None:
            shipyard.autolog(disable=not on)
    else:
        import mlflow

        def switch(on: bool) -> None:
            mlflow.autolog(disable=not on, silent=True)
    X, y = data(workload)
    switch(True)
    estimator(workload).fit(X[:500], y[:500])  # the store made, lazy imports done
    found = []
    for number in range(pairs):
        order = (True, False) if number % 2 == 0 else (False, True)
        pair = {}
        for on in order:
            switch(on)
            pair[on] = timed(lambda: estimator(workload).fit(X, y))
        found.append({"on": pair[True], "off": pair[False]})
    return {"mode": f"paired-{tool}", "workload": workload, "pairs": found}


def main() -> None:
    mode, workload, fits = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode.startswith("paired-"):
        print("RESULT " + json.dumps(paired(mode.removeprefix("paired-"), workload, fits)), flush=True)
        return
    X, y = data(workload)
    result: dict[str, Any] = {"mode": mode, "workload": workload}
    if mode in ("shipyard", "shipyard-no-model"):
        import shipyard

        result["enable"] = timed(lambda: shipyard.autolog(log_models=mode == "shipyard"))
    elif mode == "mlflow":
        import mlflow

        result["enable"] = timed(lambda: mlflow.autolog(silent=True))
    elif mode != "bare":
        raise SystemExit(f"unknown mode {mode!r}: bare, shipyard, shipyard-no-model or mlflow")
    result["first_fit"] = timed(lambda: estimator(workload).fit(X[:500], y[:500]))
    result["fits"] = [timed(lambda: estimator(workload).fit(X, y)) for _ in range(fits)]
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
