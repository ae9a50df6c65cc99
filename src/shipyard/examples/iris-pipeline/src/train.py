"""Train a logistic regression; inside `shipyard run` the model is registered with the stage's lineage."""

from pathlib import Path

import numpy as np
import skops.io as sio
import yaml
from sklearn.linear_model import LogisticRegression

import shipyard

params = yaml.safe_load(Path("params.yaml").read_text())["train"]
table = np.loadtxt("data/prepared/train.csv", delimiter=",", skiprows=1)
x, y = table[:, :4], table[:, 4].astype(int)
model = LogisticRegression(C=params["C"], max_iter=params["max_iter"]).fit(x, y)
Path("models").mkdir(exist_ok=True)
sio.dump(model, "models/model.skops")
shipyard.log_metric("train_accuracy", model.score(x, y))
# reference=x: the training data's profile, which `shipyard serve` and `shipyard monitor` measure drift against
version = shipyard.log_model(model, "iris-pipeline", examples=x[:5], reference=x, description=f"C={params['C']}")
print(f"trained with C={params['C']}: train accuracy {model.score(x, y):.3f}, registered {version.ref}")
