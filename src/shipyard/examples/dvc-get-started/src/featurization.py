"""TF-IDF features of the posts: ``(matrix, feature_names)`` pickled per split, the matrix's first two
columns being the post id and its label."""

import os
import pickle
import sys

import numpy as np
import scipy.sparse as sparse
import yaml
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer


def get_df(data):
    ids, labels, texts = [], [], []
    with open(data, encoding="utf8") as fd:
        for line in fd:
            pid, label, text = line.rstrip("\n").split("\t", 2)
            ids.append(int(pid))
            labels.append(int(label))
            texts.append(text)
    return ids, labels, texts


def save_matrix(ids, labels, matrix, feature_names, output):
    id_matrix = sparse.csr_matrix(np.asarray(ids, dtype=np.float64)).T
    label_matrix = sparse.csr_matrix(np.asarray(labels, dtype=np.float64)).T
    result = sparse.hstack([id_matrix, label_matrix, matrix], format="csr")
    with open(output, "wb") as fd:
        pickle.dump((result, feature_names), fd)


def main():
    with open("params.yaml", encoding="utf8") as fd:
        params = yaml.safe_load(fd)["featurize"]
    if len(sys.argv) != 3:
        sys.stderr.write("Arguments error. Usage:\n\tpython featurization.py data-dir-path features-dir-path\n")
        sys.exit(1)
    in_path, out_path = sys.argv[1], sys.argv[2]
    os.makedirs(out_path, exist_ok=True)
    train_ids, train_labels, train_texts = get_df(os.path.join(in_path, "train.tsv"))
    test_ids, test_labels, test_texts = get_df(os.path.join(in_path, "test.tsv"))

    bag_of_words = CountVectorizer(stop_words="english", max_features=params["max_features"],
                                   ngram_range=(1, params["ngrams"]))
    train_words = bag_of_words.fit_transform(train_texts)
    tfidf = TfidfTransformer(smooth_idf=False)
    tfidf.fit(train_words)
    feature_names = [str(name) for name in bag_of_words.get_feature_names_out()]

    save_matrix(train_ids, train_labels, tfidf.transform(train_words), feature_names,
                os.path.join(out_path, "train.pkl"))
    save_matrix(test_ids, test_labels, tfidf.transform(bag_of_words.transform(test_texts)), feature_names,
                os.path.join(out_path, "test.pkl"))


if __name__ == "__main__":
    main()
