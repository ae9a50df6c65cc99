"""An MLflow training script in the shape of MLflow's documented tracking and registry workflows: an elastic-net
on a wine-quality-like table, a nested sweep, files and inputs logged, two registered versions, an alias, and
the model loaded back by URI. Only MLflow's call shapes: tests/test_mlflow_workflows.py runs it with its import
line changed to ``import shipyard as mlflow``, and with the real MLflow (whose result it must equal).

Usage: python mlflow_wine.py TRACKING_URI  (prints one JSON line that sums up what it saw)
"""

import json
import sys

import mlflow
import numpy as np
import pandas as pd
from PIL import Image
from sklearn.linear_model import ElasticNet
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

FEATURES = ["fixed_acidity", "volatile_acidity", "citric_acid", "residual_sugar", "chlorides", "free_sulfur_dioxide",
            "total_sulfur_dioxide", "density", "pH", "sulphates", "alcohol"]
rng = np.random.default_rng(7)
X = rng.normal(size=(400, len(FEATURES)))
y = X @ rng.normal(scale=0.4, size=len(FEATURES)) + 5.8 + rng.normal(scale=0.3, size=400)
X_train, X_test, y_train, y_test = X[:300], X[300:], y[:300], y[300:]


def figure_of(actual, predicted):
    try:  # matplotlib where it is installed, else plotly: MLflow's log_figure takes both
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(3, 3))
        ax.scatter(actual, predicted)
        return fig, "plots/predicted.png"
    except ImportError:
        import plotly.graph_objects as go

        return go.Figure(go.Scatter(x=list(actual), y=list(predicted), mode="markers")), "plots/predicted.html"


mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("wine-quality")
run_ids = []
with mlflow.start_run(run_name="sweep") as parent:
    mlflow.set_tag("purpose", "sweep")
    for alpha, l1_ratio in [(0.5, 0.5), (0.05, 0.2)]:
        with mlflow.start_run(run_name=f"enet-{alpha}", nested=True) as run:
            mlflow.log_params({"alpha": alpha, "l1_ratio": l1_ratio})
            mlflow.log_input(mlflow.data.from_numpy(X_train, targets=y_train, name="wine-train"), context="training")
            frame = pd.DataFrame(X_test, columns=FEATURES).assign(quality=y_test)
            mlflow.log_input(mlflow.data.from_pandas(frame, targets="quality", name="wine-test"), context="testing")
            model = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, random_state=42).fit(X_train, y_train)
            predicted = model.predict(X_test)
            for step, rows in enumerate((100, 200, 300)):
                part = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, random_state=42).fit(X_train[:rows], y_train[:rows])
                mlflow.log_metric("rmse_by_rows", float(np.sqrt(mean_squared_error(y_test, part.predict(X_test)))),
                                  step=step)
            mlflow.log_metrics({"rmse": float(np.sqrt(mean_squared_error(y_test, predicted))),
                                "r2": float(r2_score(y_test, predicted)),
                                "mae": float(mean_absolute_error(y_test, predicted))})
            mlflow.set_tags({"model_type": "elasticnet", "dataset": "wine"})
            mlflow.log_dict({"features": FEATURES, "alpha": alpha, "l1_ratio": l1_ratio}, "config/model.json")
            mlflow.log_dict({"features": FEATURES[:2]}, "config/features.yaml")
            mlflow.log_text(f"ElasticNet(alpha={alpha}, l1_ratio={l1_ratio})\n", "notes.txt")
            mlflow.log_table({"actual": y_test[:5].round(3).tolist(), "predicted": predicted[:5].round(3).tolist()},
                             artifact_file="predictions.json")
            mlflow.log_table(pd.DataFrame({"feature": FEATURES, "coef": model.coef_.round(4)}), "coefficients.json")
            residuals = np.clip(np.abs(y_test - predicted)[:64].reshape(8, 8) * 100, 0, 255).astype(np.uint8)
            mlflow.log_image(residuals, "residuals.png")
            mlflow.log_image(Image.fromarray(residuals), "residuals-pil.png")
            figure, figure_file = figure_of(y_test, predicted)
            mlflow.log_figure(figure, figure_file)
            info = mlflow.sklearn.log_model(model, name="model", registered_model_name="wine",
                                            input_example=X_test[:3])
            run_ids.append(run.info.run_id)

client = mlflow.MlflowClient()
client.set_registered_model_alias("wine", "champion", "1")
champion = client.get_model_version_by_alias("wine", "champion")
first = mlflow.sklearn.load_model("models:/wine/1")
by_alias = mlflow.pyfunc.load_model("models:/wine@champion")
latest = mlflow.sklearn.load_model("models:/wine/latest")
versions = client.search_model_versions("name='wine'")
registered = client.get_registered_model("wine")
again = mlflow.register_model(f"runs:/{run_ids[0]}/model", "wine")
found = mlflow.search_runs(experiment_names=["wine-quality"], filter_string="metrics.rmse < 100",
                           order_by=["metrics.rmse ASC"])
fetched = mlflow.get_run(run_ids[0])
table = isinstance(found, list)
columns = {"run_id", "experiment_id", "status", "start_time", "end_time", "metrics.rmse", "metrics.r2",
           "params.alpha", "params.l1_ratio", "tags.model_type", "tags.mlflow.parentRunId", "tags.mlflow.runName"}
print(json.dumps({
    "versions": sorted(int(v.version) for v in versions),
    "champion": int(champion.version),
    "registered_again": int(again.version),
    "aliases": dict(registered.aliases),
    "same_predictions": first.predict(X_test[:3]).round(6).tolist() == by_alias.predict(X_test[:3]).round(6).tolist(),
    "latest_is_second": latest.predict(X_test[:3]).round(6).tolist() != first.predict(X_test[:3]).round(6).tolist(),
    "model_uri": info.model_uri.startswith("models:/"),
    "runs": len(found),
    "columns": sorted(columns - set([] if table else found.columns)),
    "best_alpha": None if table else str(found["params.alpha"].iloc[0]),
    "parents": None if table else sorted(set(found["tags.mlflow.parentRunId"])) == [parent.info.run_id],
    "statuses": None if table else sorted(set(found["status"])),
    "metrics": sorted(fetched.data.metrics),
    "params": fetched.data.params,
    "tags": {k: v for k, v in fetched.data.tags.items() if k in ("model_type", "dataset")},
    "run_name": fetched.info.run_name,
}, sort_keys=True))
