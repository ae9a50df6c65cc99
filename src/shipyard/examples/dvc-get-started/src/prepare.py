"""Split the posts into train and test sets: one ``id<TAB>label<TAB>text`` line per post."""

import os
import random
import re
import sys
import xml.etree.ElementTree

import yaml


def process_posts(fd_in, fd_out_train, fd_out_test, target_tag, split, seed):
    rng = random.Random(seed)
    num = 1
    for line in fd_in:
        try:
            fd_out = fd_out_train if rng.random() > split else fd_out_test
            attr = xml.etree.ElementTree.fromstring(line).attrib
            pid = attr.get("Id", "")
            label = 1 if target_tag in attr.get("Tags", "") else 0
            title = re.sub(r"\s+", " ", attr.get("Title", "")).strip()
            body = re.sub(r"\s+", " ", attr.get("Body", "")).strip()
            text = title + " " + body
            fd_out.write(f"{pid}\t{label}\t{text}\n")
            num += 1
        except Exception as exc:  # the header, the root element's lines: not posts
            sys.stderr.write(f"Skipping the broken line {num}: {exc}\n")


def main():
    with open("params.yaml", encoding="utf8") as fd:
        params = yaml.safe_load(fd)["prepare"]
    if len(sys.argv) != 2:
        sys.stderr.write("Arguments error. Usage:\n\tpython prepare.py data-file\n")
        sys.exit(1)
    split = params["split"]
    seed = params["seed"]
    input_file = sys.argv[1]
    output_train = os.path.join("data", "prepared", "train.tsv")
    output_test = os.path.join("data", "prepared", "test.tsv")
    os.makedirs(os.path.join("data", "prepared"), exist_ok=True)
    with (open(input_file, encoding="utf8") as fd_in, open(output_train, "w", encoding="utf8") as fd_out_train,
          open(output_test, "w", encoding="utf8") as fd_out_test):
        process_posts(fd_in, fd_out_train, fd_out_test, "<r>", split, seed)


if __name__ == "__main__":
    main()
