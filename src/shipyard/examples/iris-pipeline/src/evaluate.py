"""Score the trained model on the held-out rows."""

import json
from pathlib import Path

import numpy as np
import skops.io as sio

table = np.loadtxt("data/prepared/test.csv", delimiter=",", skiprows=1)
x, y = table[:, :4], table[:, 4].astype(int)
path = "models/model.skops"
model = sio.load(path, trusted=sio.get_untrusted_types(file=path))
accuracy = float((model.predict(x) == y).mean())
Path("metrics").mkdir(exist_ok=True)
Path("metrics/eval.json").write_text(json.dumps({"accuracy": accuracy, "test_rows": len(y)}))
print(f"test accuracy {accuracy:.3f} on {len(y)} rows")
