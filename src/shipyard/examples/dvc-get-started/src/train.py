"""A random forest on the TF-IDF features, pickled to model.pkl."""

import os
import pickle
import sys

import numpy as np
import yaml
from sklearn.ensemble import RandomForestClassifier


def train(seed, n_est, min_split, matrix):
    labels = np.squeeze(matrix[:, 1].toarray()).astype(int)  # 0/1, as prepare.py wrote them
    x = matrix[:, 2:]
    clf = RandomForestClassifier(n_estimators=n_est, min_samples_split=min_split, n_jobs=1, random_state=seed)
    clf.fit(x, labels)
    return clf


def main():
    with open("params.yaml", encoding="utf8") as fd:
        params = yaml.safe_load(fd)["train"]
    if len(sys.argv) != 3:
        sys.stderr.write("Arguments error. Usage:\n\tpython train.py features model\n")
        sys.exit(1)
    input_file = os.path.join(sys.argv[1], "train.pkl")
    output = sys.argv[2]
    with open(input_file, "rb") as fd:
        matrix, _ = pickle.load(fd)
    clf = train(params["seed"], params["n_est"], params["min_split"], matrix)
    with open(output, "wb") as fd:
        pickle.dump(clf, fd)


if __name__ == "__main__":
    main()
