"""Write data/data.xml: a few hundred synthetic StackOverflow-like posts (not a pipeline stage).

The real tutorial downloads a sample of StackOverflow's dump; these posts have the same shape
(one ``<row .../>`` per line, tags written as ``&lt;r&gt;``) and are small enough that the whole
pipeline runs in seconds. The output is the same on every run (a fixed seed).
"""

import os
import random
import sys
from xml.sax.saxutils import quoteattr

R_WORDS = ["dataframe", "ggplot2", "dplyr", "tidyverse", "vector", "factor", "lapply", "shiny", "rmarkdown",
           "data.table", "cran", "rstudio", "plot", "regression", "merge", "column"]
OTHER_WORDS = ["python", "pandas", "javascript", "react", "java", "spring", "docker", "kubernetes", "sql",
               "numpy", "django", "flask", "css", "html", "rust", "golang", "column", "plot", "merge"]
COMMON = ["how", "to", "the", "a", "in", "with", "error", "when", "using", "my", "function", "value", "list",
          "file", "why", "does", "not", "work", "get", "from"]
OTHER_TAGS = ["python", "javascript", "java", "sql", "docker", "pandas", "css"]


def post(rng: random.Random, pid: int) -> str:
    is_r = rng.random() < 0.3
    topic = R_WORDS if is_r else OTHER_WORDS
    mixed = COMMON + R_WORDS + OTHER_WORDS  # most words say nothing about the tag

    def word() -> str:
        return rng.choice(topic) if rng.random() < 0.2 else rng.choice(mixed)

    title = " ".join(word() for _ in range(rng.randint(5, 9)))
    body = " ".join(word() for _ in range(rng.randint(10, 30)))
    if rng.random() < 0.05:  # mislabelled posts, as in real tags
        is_r = not is_r
    tags = ["r"] if is_r else []
    tags += rng.sample(OTHER_TAGS, rng.randint(0 if is_r else 1, 2))
    tag_text = "".join(f"<{t}>" for t in tags)
    return (f"  <row Id=\"{pid}\" PostTypeId=\"1\" Score=\"{rng.randint(-2, 40)}\" Title={quoteattr(title)} "
            f"Body={quoteattr('<p>' + body + '</p>')} Tags={quoteattr(tag_text)} />")


def main() -> None:
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join("data", "data.xml")
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 400
    rng = random.Random(20170428)
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<posts>"]
    lines += [post(rng, pid) for pid in range(1, count + 1)]
    lines.append("</posts>")
    with open(out, "w", encoding="utf-8") as fd:
        fd.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
