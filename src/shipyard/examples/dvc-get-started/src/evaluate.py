"""Score the model on both splits: metrics through dvclive (or Shipyard's drop-in), ROC, precision-recall
and confusion-matrix data, and a feature-importance image, all under eval/.

Under DVC, dvclive writes the metrics as in the tutorial; where dvclive is not installed (a Shipyard
project), ``shipyard.live.Live`` writes the same files; with neither, the metrics file is written here.
The plot files are written by this script, in dvclive's layout, so they are the same in every case.
"""

import json
import math
import os
import pickle
import struct
import sys
import zlib

import numpy as np
from sklearn import metrics

try:
    from dvclive import Live
except ImportError:
    try:
        from shipyard.live import Live
    except ImportError:
        Live = None

EVAL_PATH = "eval"


def open_live(path):
    if Live is None:
        return None
    try:
        return Live(path, dvcyaml=False, save_dvc_exp=False)
    except TypeError:  # a drop-in without dvclive's DVC options
        return Live(path)


def log_metric(live, summary, name, split, value):
    summary.setdefault(name, {})[split] = value
    if live is None:
        return
    try:
        live.log_metric(f"{name}/{split}", value, plot=False)
    except TypeError:
        live.log_metric(f"{name}/{split}", value)


def dump(path, body):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf8") as fd:
        json.dump(body, fd, indent=4)
        fd.write("\n")


def evaluate(model, matrix, split, live, summary):
    labels = np.squeeze(matrix[:, 1].toarray()).astype(int)
    x = matrix[:, 2:]
    predictions_by_class = model.predict_proba(x)
    predictions = predictions_by_class[:, 1]

    log_metric(live, summary, "avg_prec", split, float(metrics.average_precision_score(labels, predictions)))
    log_metric(live, summary, "roc_auc", split, float(metrics.roc_auc_score(labels, predictions)))

    plots = os.path.join(EVAL_PATH, "plots", "sklearn")
    fpr, tpr, roc_thresholds = metrics.roc_curve(labels, predictions, drop_intermediate=True)
    dump(os.path.join(plots, "roc", f"{split}.json"), {"roc": [
        {"fpr": float(f), "tpr": float(t), "threshold": float(th) if math.isfinite(th) else 1.0}
        for f, t, th in zip(fpr, tpr, roc_thresholds, strict=True)]})
    precision, recall, prc_thresholds = metrics.precision_recall_curve(labels, predictions)
    dump(os.path.join(plots, "prc", f"{split}.json"), {"precision_recall": [
        {"precision": float(p), "recall": float(r), "threshold": float(t)}
        for p, r, t in zip(precision[:-1], recall[:-1], prc_thresholds, strict=True)]})
    dump(os.path.join(plots, "cm", f"{split}.json"), [
        {"actual": str(a), "predicted": str(p)} for a, p in zip(labels, predictions_by_class.argmax(-1), strict=True)])


def png(width, height, pixels):
    """A grayscale PNG (no image library needed): ``pixels`` is rows of 0-255 values."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + bytes(row) for row in pixels)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def save_importance_plot(model, feature_names):
    """The 30 largest mean decreases in impurity, as bars."""
    importances = model.feature_importances_
    top = sorted(range(len(importances)), key=lambda i: (-importances[i], feature_names[i]))[:30]
    width, height, bar = 8 * len(top) + 2, 120, 6
    peak = max((importances[i] for i in top), default=0.0) or 1.0
    rows = [[255] * width for _ in range(height)]
    for n, i in enumerate(top):
        tall = round((height - 2) * importances[i] / peak)
        for y in range(height - 1 - tall, height - 1):
            for x in range(2 + 8 * n, 2 + 8 * n + bar):
                rows[y][x] = 60
    path = os.path.join(EVAL_PATH, "plots", "images", "importance.png")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fd:
        fd.write(png(width, height, rows))


def main():
    if len(sys.argv) != 3:
        sys.stderr.write("Arguments error. Usage:\n\tpython evaluate.py model features\n")
        sys.exit(1)
    model_file = sys.argv[1]
    train_file = os.path.join(sys.argv[2], "train.pkl")
    test_file = os.path.join(sys.argv[2], "test.pkl")
    with open(model_file, "rb") as fd:
        model = pickle.load(fd)
    with open(train_file, "rb") as fd:
        train, feature_names = pickle.load(fd)
    with open(test_file, "rb") as fd:
        test, _ = pickle.load(fd)

    live = open_live(EVAL_PATH)  # before the files: dvclive clears its folders when it starts
    summary = {}
    evaluate(model, train, "train", live, summary)
    evaluate(model, test, "test", live, summary)
    save_importance_plot(model, feature_names)
    if live is not None:
        live.end()
    else:
        dump(os.path.join(EVAL_PATH, "metrics.json"), summary)


if __name__ == "__main__":
    main()
