"""shipyard.yaml takes DVC's dvc.yaml as written: templating (vars, ${...}, foreach, matrix), dict-form params,
wdir, frozen, always_changed, desc, outs with cache: false / persist, metrics inside a stage's own output folder,
and one-line errors for DVC's keys Shipyard does not take.

The templating examples are DVC's documented ones (dvc.org, user-guide/project-structure/dvcyaml-files: Templating,
Variables, foreach stages; the matrix example of DVC's pull request 9725 and its docs). The expected stage names,
commands and outputs are written here by hand; they were checked against the real DVC 3.67
(bench/.venvs/dvc: `dvc stage list` and `Repo(".").index.stages` on the same files in a git repository gave
the same names, commands and outputs). The tests themselves need no DVC.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from shipyard.core.pipelines import dag
from shipyard.core.pipelines.params import ParamFiles
from shipyard.core.project.loader import load_config, parse_config
from shipyard.core.project.model import Project
from shipyard.core.workspace.lockfile import load_lock
from shipyard.errors import ConfigError, NotFoundError

PARAMS = """\
models:
  us:
    threshold: 10
    filename: 'model-us.hdf5'
myobject:
  a: {prop1: 1, prop2: out-a}
  b: {prop1: 2, prop2: out-b}
mydict:
  foo: foo
  bar: 1
  bool: true
  nested:
    baz: bar
  list: [2, 3, 'qux']
"""

DOCUMENTED = """\
version: 1
vars:
  - desc: 'Reusable description'
stages:
  build-us:
    desc: ${desc}
    cmd: >-
      python train.py
      --thresh ${models.us.threshold}
      --out ${models.us.filename}
    outs:
      - ${models.us.filename}:
          cache: true
  cleanups:
    foreach:
      - raw1
      - labels1
      - raw2
    do:
      cmd: clean.py "${item}"
      outs:
        - ${item}.cln
  train:
    foreach:
      - epochs: 3
        thresh: 10
      - epochs: 10
        thresh: 15
    do:
      cmd: python train.py ${item.epochs} ${item.thresh}
  build:
    foreach:
      uk:
        epochs: 3
        thresh: 10
      us:
        epochs: 10
        thresh: 15
    do:
      cmd: python train.py '${key}' ${item.epochs} ${item.thresh}
      outs:
        - model-${key}.hdfs
  mystages:
    foreach: ${myobject}
    do:
      cmd: ./script.py ${key} ${item.prop1}
      outs:
        - ${item.prop2}
  unpack:
    cmd: R train.r ${mydict}
  mtrain:
    matrix:
      model: [cnn, xgb]
      feature: [feature1, feature2]
    cmd: ./train.py --feature ${item.feature} ${item.model}
    outs:
      - ${item.model}-${item.feature}.pkl
  stage1:
    matrix:
      os: [windows, linux]
      pyv: ["3.9", "3.10"]
      dict:
      - arg1: 1
      - arg2: 2
      lst:
      - [1, 2]
      - [3, 4]
    cmd: echo ${item.os} ${item.pyv} ${item.lst.0} ${item.lst[1]}
"""

# (name, cmd, outs) as DVC 3.67 builds them from DOCUMENTED and PARAMS
EXPECTED = [
    ("build-us", "python train.py --thresh 10 --out model-us.hdf5", ("model-us.hdf5",)),
    ("cleanups@raw1", 'clean.py "raw1"', ("raw1.cln",)),
    ("cleanups@labels1", 'clean.py "labels1"', ("labels1.cln",)),
    ("cleanups@raw2", 'clean.py "raw2"', ("raw2.cln",)),
    ("train@0", "python train.py 3 10", ()),
    ("train@1", "python train.py 10 15", ()),
    ("build@uk", "python train.py 'uk' 3 10", ("model-uk.hdfs",)),
    ("build@us", "python train.py 'us' 10 15", ("model-us.hdfs",)),
    ("mystages@a", "./script.py a 1", ("out-a",)),
    ("mystages@b", "./script.py b 2", ("out-b",)),
    ("unpack", "R train.r --foo foo --bar 1 --bool --nested.baz bar --list 2 3 qux", ()),
    ("mtrain@cnn-feature1", "./train.py --feature feature1 cnn", ("cnn-feature1.pkl",)),
    ("mtrain@cnn-feature2", "./train.py --feature feature2 cnn", ("cnn-feature2.pkl",)),
    ("mtrain@xgb-feature1", "./train.py --feature feature1 xgb", ("xgb-feature1.pkl",)),
    ("mtrain@xgb-feature2", "./train.py --feature feature2 xgb", ("xgb-feature2.pkl",)),
    *((f"stage1@{os_}-{pyv}-dict{d}-lst{n}", f"echo {os_} {pyv} {lst}", ())
      for os_ in ("windows", "linux") for pyv in ("3.9", "3.10") for d in (0, 1)
      for n, lst in ((0, "1 2"), (1, "3 4"))),
]


def project(tmp_path: Path, config: str, **files: str) -> Path:
    root = tmp_path / "proj"
    root.mkdir(exist_ok=True)
    (root / ".shipyard").mkdir(exist_ok=True)
    (root / "shipyard.yaml").write_text(config)
    for name, text in files.items():
        (root / name.replace("__", "/")).parent.mkdir(parents=True, exist_ok=True)
        (root / name.replace("__", "/")).write_text(text)
    return root


def refused(root: Path) -> str:
    with pytest.raises(ConfigError) as exc:
        load_config(root)
    message = str(exc.value)
    assert len(message.splitlines()) == 1, message
    assert "Traceback" not in message and "Field required" not in message, message
    return message


def refused_text(text: str, tmp_path: Path, **files: str) -> str:
    return refused(project(tmp_path, text, **files))


# -- templating: DVC's documented examples ------------------------------------------------------------------------
def test_dvcs_documented_templating_examples_build_the_stages_dvc_builds(tmp_path: Path) -> None:
    config = load_config(project(tmp_path, DOCUMENTED, **{"params.yaml": PARAMS}))
    assert [(n, s.cmd, s.outs) for n, s in config.stages.items()] == EXPECTED
    assert config.stages["build-us"].desc == "Reusable description"


def test_vars_from_a_params_file_with_chosen_keys_and_stage_vars(tmp_path: Path) -> None:
    text = """\
version: 1
vars:
  - params.json:clean,feats
stages:
  featurize:
    cmd: ${feats.exec}
    deps:
      - ${clean.filename}
    outs:
      - ${feats.dirname}
  build-us:
    vars:
      - sub.yaml:build
      - model:
          filename: 'model-us.hdf5'
    cmd: python train.py ${build.epochs} --out ${model.filename}
    outs:
      - ${model.filename}
"""
    params = {"clean": {"filename": "clean.csv"}, "feats": {"exec": "python feats.py", "dirname": "feats"},
              "other": 1}
    root = project(tmp_path, text, **{"params.json": json.dumps(params), "sub.yaml": "build:\n  epochs: 7\n",
                                      "clean.csv": "x"})
    stages = load_config(root).stages
    assert (stages["featurize"].cmd, stages["featurize"].deps, stages["featurize"].outs) == (
        "python feats.py", ("clean.csv",), ("feats",))
    assert (stages["build-us"].cmd, stages["build-us"].outs) == (
        "python train.py 7 --out model-us.hdf5", ("model-us.hdf5",))


def test_the_default_params_file_may_be_listed_in_vars_again(tmp_path: Path) -> None:
    text = ("version: 1\nvars:\n  - params.yaml\n  - extra.yaml\n  - params.yaml\nstages:\n  a:\n"
            "    vars: [params.yaml]\n    cmd: echo ${lr} ${extra}\n")
    root = project(tmp_path, text, **{"params.yaml": "lr: 1\n", "extra.yaml": "extra: 2\n"})
    assert load_config(root).stages["a"].cmd == "echo 1 2"


def test_whole_value_keeps_its_type_and_escapes_stay_literal(tmp_path: Path) -> None:
    text = ("version: 1\nvars:\n  - freeze: true\n    home: x\nstages:\n  a:\n    cmd: echo \\${HOME} ${home}\n"
            "    frozen: ${freeze}\n")
    stage = load_config(project(tmp_path, text)).stages["a"]
    assert (stage.cmd, stage.frozen) == ("echo ${HOME} x", True)


def test_a_changed_params_file_expands_again_through_the_config_cache(tmp_path: Path) -> None:
    root = project(tmp_path, "version: 1\nstages:\n  a:\n    cmd: echo ${lr}\n", **{"params.yaml": "lr: 1\n"})
    assert load_config(root).stages["a"].cmd == "echo 1"
    assert (root / ".shipyard" / "config-cache.json").exists()
    assert load_config(root).stages["a"].cmd == "echo 1"  # from the cache
    (root / "params.yaml").write_text("lr: 2\n")
    assert load_config(root).stages["a"].cmd == "echo 2"
    (root / "params.yaml").unlink()
    assert "unknown variable ${lr}" in refused(root)


def test_a_file_without_templating_reads_no_params_file(tmp_path: Path) -> None:
    root = project(tmp_path, "version: 1\nstages:\n  a:\n    cmd: echo $HOME\n", **{"params.yaml": "- [broken\n"})
    assert load_config(root).stages["a"].cmd == "echo $HOME"


# -- templating: errors are one line with the file, the line and the variable ----------------------------------
@pytest.mark.parametrize(("text", "params", "expected"), [
    ("version: 1\nstages:\n  a:\n    cmd: python x.py ${nope.x}\n", "",
     "shipyard.yaml:4: stages.a.cmd: unknown variable ${nope.x}"),
    ("version: 1\nstages:\n  a:\n    cmd: python x.py ${item}\n", "",
     "shipyard.yaml:4: stages.a.cmd: unknown variable ${item}: it is defined neither in params.yaml nor in vars"
     " (item and key exist only in foreach and matrix stages)"),
    ("version: 1\nstages:\n  t:\n    foreach: [1, 2]\n    do:\n      cmd: x ${item.a}\n", "",
     "shipyard.yaml:6: stages.t@1.cmd: unknown variable ${item.a}: item is a single value, not a mapping or a list"),
    ("version: 1\nstages:\n  a:\n    cmd: x ${lst}\n", "lst: [1, 2]\n",
     "shipyard.yaml:4: stages.a.cmd: ${lst} is a list, which cannot be written here"),
    ("version: 1\nstages:\n  a:\n    cmd: x ${a}\n", "a: ${a}\n",  # a value that refers to itself
     "shipyard.yaml:4: stages.a.cmd: the value of ${a} holds '${': values are substituted once"),
    ("version: 1\nstages:\n  a:\n    cmd: ${b}\n", "b: ${c}\nc: ${b}\n",  # recursive values
     "shipyard.yaml:4: stages.a.cmd: the value of ${b} holds '${'"),
    ("version: 1\nstages:\n  a:\n    cmd: x ${a b}\n", "",
     "shipyard.yaml:4: stages.a.cmd: unknown variable ${a b}"),
    ("version: 1\nstages:\n  a:\n    cmd: x ${a..b}\n", "",
     "shipyard.yaml:4: stages.a.cmd: ${a..b} is not a variable"),
    ("version: 1\nvars:\n  - x: 1\n  - x: 2\nstages: {}\n", "",
     "shipyard.yaml:4: vars: 'x' from vars[1] is already defined"),
    ("version: 1\nvars:\n  - x: ${y}\nstages: {}\n", "", "shipyard.yaml:2: vars: ${...} cannot be used in vars"),
    ("version: 1\nvars:\n  - missing.yaml\nstages: {}\n", "", "shipyard.yaml:3: vars: params file missing.yaml does "
     "not exist"),
    ("version: 1\nstages:\n  t:\n    foreach: [a]\n    cmd: x\n    do:\n      cmd: y\n", "",
     "shipyard.yaml:5: stages.t: with foreach, the stage's keys go under do: ('cmd' is beside foreach)"),
    ("version: 1\nstages:\n  t:\n    foreach: [a]\n", "", "shipyard.yaml:3: stages.t: foreach needs do:"),
    ("version: 1\nstages:\n  t:\n    foreach: 3\n    do:\n      cmd: x\n", "",
     "shipyard.yaml:4: stages.t.foreach: should be a list or a mapping (got int)"),
    ("version: 1\nstages:\n  t:\n    foreach: [a]\n    do:\n      foreach: [b]\n      do:\n        cmd: x\n", "",
     "shipyard.yaml:5: stages.t.do: foreach and matrix cannot be nested"),
    ("version: 1\nstages:\n  t@x:\n    cmd: x\n", "", "shipyard.yaml:3: stage name 't@x': '@' is kept for the stages "
     "foreach and matrix generate"),
    ("version: 1\nstages:\n  t:\n    do:\n      cmd: x\n", "", "shipyard.yaml:4: stages.t: do: goes with foreach:"),
    ("version: 1\nstages:\n  t:\n    foreach: [\"a\\nb\"]\n    do:\n      cmd: x\n", "",
     "shipyard.yaml:5: stages.t: cannot name a stage 't@a\\nb': the value after '@' must be 1 to 128 characters"),
])
def test_templating_errors_name_the_line_and_the_variable(tmp_path: Path, text: str, params: str,
                                                          expected: str) -> None:
    files = {"params.yaml": params} if params else {}
    assert refused_text(text, tmp_path, **files).startswith(expected)


# -- templating: hostile files are bounded ---------------------------------------------------------------------------
def test_a_huge_foreach_or_matrix_is_refused_before_anything_is_generated(tmp_path: Path) -> None:
    many = "items: [" + ", ".join(str(i) for i in range(5_000)) + "]\n"
    text = "version: 1\nstages:\n  t:\n    foreach: ${items}\n    do:\n      cmd: echo ${item}\n"
    assert "5000 stages: more than 1000 stages in all" in refused_text(text, tmp_path, **{"params.yaml": many})
    wide = "version: 1\nstages:\n  m:\n    matrix:\n" + "".join(
        f"      k{i}: [a, b, c, d, e, f, g, h, i, j]\n" for i in range(12)) + "    cmd: x\n"
    assert "1000000000000 combinations: more than 1000 stages" in refused_text(wide, tmp_path)


def test_a_huge_variable_is_refused(tmp_path: Path) -> None:
    big = "x" * (10 * 1024 * 1024)
    text = "version: 1\nstages:\n  a:\n    cmd: echo ${big}\n"
    assert "larger than the 8 MiB" in refused_text(text, tmp_path, **{"params.yaml": f"big: {big}\n"})
    assert "expands to more than 100000 characters" in refused_text(
        text, tmp_path, **{"params.yaml": f"big: {'x' * 2_000_000}\n"})
    # many copies of a large value: each under the bound, all together over it
    text = "version: 1\nstages:\n  t:\n    foreach: ${n}\n    do:\n      cmd: echo ${big} ${big} ${item}\n"
    params = f"big: {'x' * 40_000}\nn: [{', '.join(map(str, range(300)))}]\n"
    assert "more than 16000000 characters in all" in refused_text(text, tmp_path, **{"params.yaml": params})


def test_a_long_string_is_refused_before_it_is_scanned_and_unclosed_braces_stay_literal(tmp_path: Path) -> None:
    # 60,000 unclosed '${': refused by its length before any scan (the scan was quadratic: ~70 s)
    text = "stages:\n  s:\n    cmd: 'echo " + "${" * 60_000 + "'\n"
    assert refused_text(text, tmp_path).endswith("stages.s.cmd: is longer than 100000 characters")
    # just under the bound: scanned in linear time, and an unclosed '${' is text, as in DVC
    config = parse_config("vars:\n  - x: 1\nstages:\n  s:\n    cmd: 'echo " + "${" * 49_000 + " ${x}'\n  t:\n"
                          "    cmd: echo ${\n")
    assert config.stages["s"].cmd == "echo " + "${" * 49_000 + " 1" and config.stages["t"].cmd == "echo ${"


def test_overlapping_outputs_are_found_among_thousands_without_comparing_every_pair(tmp_path: Path) -> None:
    import subprocess
    import sys

    # 1,000 foreach stages x 30 outputs: comparing every pair took minutes; a path index takes about a second
    outs = "".join(f"        - d${{item}}/o{j}\n" for j in range(30))
    root = project(tmp_path, "vars:\n  - params.json\nstages:\n  s:\n    foreach: ${items}\n    do:\n      cmd: echo\n"
                             "      outs:\n" + outs + "  t:\n    cmd: echo\n    deps: [d998, d5/o7]\n"
                             "    outs: [d1000/o1]\n", **{"params.json": json.dumps({"items": list(range(999))})})
    code = ("import sys\nfrom pathlib import Path\nfrom shipyard.core.pipelines import dag\n"
            "from shipyard.core.project.loader import load_config\nroot = Path(sys.argv[1])\n"
            "p = dag.build(load_config(root), root)\nprint(len(p.stages), sorted(p.stages['t'].upstream))\n")
    done = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.stdout.split("\n")[0] == "1000 ['s@5', 's@998']", done.stderr[-2000:]
    cases = {  # (outputs of a, outputs of b): the path both claim
        ("x/y/z", "x"): "stages 'a' and 'b' both claim output x:",
        ("x", "x/y/z"): "stages 'a' and 'b' both claim output x:",
        ("q/r", "q/r"): "stages 'a' and 'b' both claim output q/r:",
        ("k/l, k/l/m", "n"): "stage 'a' both claim output k/l:",
    }
    for (a, b), message in cases.items():
        (root / "shipyard.yaml").write_text(f"stages:\n  a:\n    cmd: x\n    outs: [{a}]\n  b:\n    cmd: x\n"
                                            f"    outs: [{b}]\n")
        with pytest.raises(ConfigError, match=message):
            dag.build(load_config(root), root)
    (root / "shipyard.yaml").write_text("stages:\n  a:\n    cmd: x\n    outs: [x/y, x/z]\n  b:\n    cmd: x\n"
                                        "    deps: [x]\n  c:\n    cmd: x\n    deps: [x/y/w]\n")
    stages = dag.build(load_config(root), root).stages
    assert stages["b"].upstream == {"a"} and stages["c"].upstream == {"a"}


def test_a_params_file_outside_the_project_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "secret.yaml").write_text("token: hunter2\n")
    root = project(tmp_path, "version: 1\nvars:\n  - ../secret.yaml\nstages: {}\n")
    assert "outside the project" in refused(root)
    (root / "link.yaml").symlink_to(tmp_path / "secret.yaml")
    (root / "shipyard.yaml").write_text("version: 1\nvars:\n  - link.yaml\nstages:\n  a:\n    cmd: ${token}\n")
    assert "leads outside the project" in refused(root)


# -- dict-form params, wdir, metrics inside outputs ------------------------------------------------------------------
def test_dict_form_params_and_all_the_params_of_a_file(tmp_path: Path) -> None:
    text = ("version: 1\nstages:\n  a:\n    cmd: x\n    params:\n      - params.yaml: [lr, net.depth]\n      - seed\n"
            "      - other.yaml:\n      - more.json: null\n")
    root = project(tmp_path, text, **{"params.yaml": "lr: 0.1\nnet: {depth: 3}\nseed: 7\n",
                                      "other.yaml": "a: 1\nb: {c: 2}\n", "more.json": '{"z": true}'})
    config = load_config(root)
    assert config.stages["a"].params == ("params.yaml:lr", "params.yaml:net.depth", "seed", "other.yaml:",
                                         "more.json:")
    values = ParamFiles(root, config.params).values("a", dag.build(config, root).stages["a"].params)
    assert values == {"lr": 0.1, "net.depth": 3, "seed": 7, "other.yaml:a": 1, "other.yaml:b": {"c": 2},
                      "more.json:z": True}


def test_wdir_paths_are_taken_from_the_working_folder(tmp_path: Path) -> None:
    text = ("version: 1\nstages:\n  a:\n    wdir: sub\n    cmd: x\n    deps: [../data/raw.txt, code.py]\n"
            "    params: [lr, conf.yaml:b]\n    outs: [out]\n    metrics: [out/m.json]\n"
            "    plots: [{../plots/p.csv: {x: step, cache: false}}]\n")
    root = project(tmp_path, text, **{"data__raw.txt": "r", "sub__code.py": "", "sub__params.yaml": "lr: 1\n",
                                      "sub__conf.yaml": "b: 2\n"})
    stage = dag.build(load_config(root), root).stages["a"]
    assert (stage.deps, stage.outs, stage.metrics, stage.plots) == (
        ("data/raw.txt", "sub/code.py"), ("sub/out",), ("sub/out/m.json",), ("plots/p.csv",))
    assert stage.params == ("sub/params.yaml:lr", "sub/conf.yaml:b")
    assert stage.uncached == frozenset({"plots/p.csv"}) and stage.stored == ("sub/out", "sub/out/m.json")


def test_a_params_file_is_taken_from_wdir_and_a_missing_one_names_its_stage(tmp_path: Path) -> None:
    # DVC's way to read the root params file from a stage with a wdir (DVC 3.67 runs it)
    text = ("stages:\n  prepare:\n    wdir: prep\n    cmd: x\n    params:\n      - ../params.yaml:\n          - data\n"
            "      - ../conf.yaml:\n    outs: [../data/all.csv]\n")
    root = project(tmp_path, text, **{"params.yaml": "data: d\n", "conf.yaml": "k: 1\n", "prep__x": ""})
    stage = dag.build(load_config(root), root).stages["prepare"]
    assert stage.params == ("params.yaml:data", "conf.yaml:") and stage.outs == ("data/all.csv",)
    assert ParamFiles(root, "params.yaml").values("prepare", stage.params) == {"data": "d", "conf.yaml:k": 1}
    (root / "shipyard.yaml").write_text(text.replace("../conf.yaml", "../../conf.yaml"))
    assert refused(root) == ("shipyard.yaml:5: stages.prepare.params: params file '../../conf.yaml' is outside the "
                             "project (taken from the stage's wdir prep): use a path relative to the stage's working "
                             "folder that stays inside the project")
    (root / "shipyard.yaml").write_text(text.replace("../conf.yaml", "../conf.yml"))
    with pytest.raises(ConfigError) as exc:
        dag.build(load_config(root), root)
    assert str(exc.value) == ("shipyard.yaml: stage 'prepare' reads params file conf.yml (its params:), which does "
                              "not exist: create it, or fix the name (did you mean conf.yaml?)")


@pytest.mark.parametrize("wdir", ["..", "sub/../..", "/tmp", "../proj"])
def test_a_wdir_outside_the_project_is_refused(tmp_path: Path, wdir: str) -> None:
    assert "outside the project" in refused_text(f"version: 1\nstages:\n  a:\n    wdir: {wdir}\n    cmd: x\n",
                                                 tmp_path)


def test_a_wdir_path_may_not_climb_out_either(tmp_path: Path) -> None:
    root = project(tmp_path, "version: 1\nstages:\n  a:\n    wdir: sub\n    cmd: x\n    outs: [../../x]\n")
    with pytest.raises(ConfigError, match="outside the project"):
        dag.build(load_config(root), root)


def test_metrics_inside_the_stages_own_output_folder_but_not_another_stages(tmp_path: Path) -> None:
    text = ("version: 1\nmetrics: [eval/metrics.json]\nstages:\n  evaluate:\n    cmd: x\n    outs: [eval]\n"
            "    metrics: [{eval/metrics.json: {cache: false}}]\n    plots: [eval/plots/roc.json]\n")
    root = project(tmp_path, text)
    stage = dag.build(load_config(root), root).stages["evaluate"]
    assert stage.produced == ("eval", "eval/metrics.json", "eval/plots/roc.json")
    (root / "shipyard.yaml").write_text(text + "  other:\n    cmd: y\n    metrics: [eval/other.json]\n")
    with pytest.raises(ConfigError, match="stages 'evaluate' and 'other' both claim output eval"):
        dag.build(load_config(root), root)


def test_a_dvc_tutorial_shaped_file_loads(tmp_path: Path) -> None:
    text = """\
version: 1
stages:
  evaluate:
    cmd: python src/evaluate.py model.pkl data/features
    deps:
    - data/features
    - model.pkl
    - src/evaluate.py
    outs:
    - eval
metrics:
- eval/metrics.json
params:
- params.yaml
- other.yaml
plots:
- ROC:
    template: simple
    x: fpr
    y:
      eval/plots/sklearn/roc/train.json: tpr
      eval/plots/sklearn/roc/test.json: tpr
- Confusion-Matrix:
    template: confusion
    x: actual
    y:
      eval/plots/sklearn/cm/train.json: predicted
- eval/plots/images/importance.png
"""
    config = parse_config(text)
    project_ = Project.from_dict(config.model_dump())
    assert project_.metrics == ("eval/metrics.json",) and project_.params_files == ("params.yaml", "other.yaml")
    assert project_.params == "params.yaml"
    assert project_.plots[0] == {"ROC": {"template": "simple", "x": "fpr", "y": {
        "eval/plots/sklearn/roc/train.json": "tpr", "eval/plots/sklearn/roc/test.json": "tpr"}}}
    assert project_.plots[2] == "eval/plots/images/importance.png"


def test_a_list_of_commands_runs_them_in_order(tmp_path: Path) -> None:
    config = parse_config("version: 1\nstages:\n  a:\n    cmd:\n      - python a.py\n      - python b.py\n")
    assert config.stages["a"].cmd == "python a.py && python b.py"


# -- DVC's keys Shipyard does not take -------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("version: 1\nartifacts:\n  model:\n    path: m.pkl\n    type: model\n",
     "shipyard.yaml:2: DVC's artifacts: is not supported in shipyard.yaml: declare the model under models:"),
    ("version: 1\nstages:\n  a:\n    cmd: x\n    outs:\n      - m.pkl:\n          remote: s3store\n",
     "shipyard.yaml:7: 'remote' in stages.a.outs[0] (m.pkl) is not supported: every stored output goes to the "
     "project's remote"),
    ("version: 1\nstages:\n  a:\n    cmd: x\n    outs:\n      - m.pkl:\n          push: false\n",
     "shipyard.yaml:7: 'push' in stages.a.outs[0] (m.pkl) is not supported: every stored output is pushed"),
    ("version: 1\nstages:\n  a:\n    cmd: x\n    outs:\n      - m.pkl:\n          checkpoint: true\n",
     "shipyard.yaml:7: 'checkpoint' in stages.a.outs[0] (m.pkl) is not supported: DVC 3 dropped checkpoints"),
    ("version: 1\nstages:\n  a:\n    cmd: x\n    outs:\n      - m.pkl:\n          cahce: false\n",
     "shipyard.yaml:7: 'cahce' in stages.a.outs[0] (m.pkl) is not supported: did you mean 'cache'?"),
    ("version: 1\nstages:\n  a:\n    cmd: x\n    deps:\n      - data:\n          hash: md5\n",
     "shipyard.yaml:6: stages.a.deps[0]: a dependency is a path: write `- data`"),
    ("version: 1\nstages:\n  - name: a\n    cmd: x\n",
     "shipyard.yaml:2: stages: should be a mapping of stage names to stages"),
    ("version: 1\nstages:\n  t:\n    foreach: [a, b]\n    do:\n      cmd: x\n      outs:\n        - o:\n"
     "            push: false\n",
     "shipyard.yaml:9: 'push' in stages.t@a.outs[0] (o) is not supported"),
])
def test_dvc_keys_we_do_not_take_say_what_to_use(tmp_path: Path, text: str, expected: str) -> None:
    assert refused_text(text, tmp_path).startswith(expected)


# -- a real run: wdir, persist, cache: false, frozen, always_changed, metrics inside an output folder ---------------
RUN = """\
version: 1
stages:
  prep:
    desc: copies the raw data
    wdir: sub
    cmd: >-
      mkdir -p out && cat ../data/raw.txt > out/prepared.txt && echo '{"n": 3}' > out/metrics.json
    deps: [../data/raw.txt]
    params: [scale]
    outs: [out]
    metrics: [out/metrics.json]
  count:
    always_changed: true
    cmd: echo run >> log.txt && date +%s%N > notes.txt
    outs:
      - log.txt:
          persist: true
      - notes.txt:
          cache: false
  fz:
    frozen: FROZEN
    cmd: cat data/raw.txt data/raw.txt > twice.txt
    deps: [data/raw.txt]
    outs: [twice.txt]
"""


def _runner(root: Path) -> Any:
    from shipyard.wiring import open_pipeline, settings_from_environment

    environ = {**os.environ, "SHIPYARD_HOME": str(root / ".shipyard")}
    return open_pipeline(settings_from_environment(environ, root), environ)


def _run(root: Path) -> tuple[Any, dict[str, str]]:
    from shipyard.interfaces.cli.pipeline import _ignore_outputs

    runner = _runner(root)
    report = runner.run()
    _ignore_outputs(runner, [o.stage for o in report.outcomes if o.result != "failed"])
    return runner, {o.stage: o.result for o in report.outcomes}


def test_a_real_run_with_dvcs_stage_options(tmp_path: Path) -> None:
    root = project(tmp_path, RUN.replace("FROZEN", "false"),
                   **{"data__raw.txt": "raw\n", "sub__params.yaml": "scale: 2\n"})
    runner, results = _run(root)
    assert results == {"prep": "ran", "count": "ran", "fz": "ran"}
    lock = load_lock(root)
    assert set(lock.stages["prep"].outs) == {"sub/out", "sub/out/metrics.json"}
    assert lock.stages["prep"].params == {"sub/params.yaml:scale": 2}
    assert set(lock.stages["count"].outs) == {"log.txt"}  # cache: false: not stored, nothing to restore from
    ignored = (root / ".gitignore").read_text().split()
    assert "/sub/out" in ignored and "/log.txt" in ignored and "/twice.txt" in ignored
    assert not any("notes" in line for line in ignored)  # cache: false: git keeps it
    status = {s.name: s for s in runner.status()}
    assert status["prep"].desc == "copies the raw data" and status["count"].reasons == ["always_changed: true"]

    (root / "sub" / "out" / "stray.txt").write_text("left from an earlier run")
    (root / "sub" / "params.yaml").write_text("scale: 3\n")
    _, results = _run(root)  # a file in an output whose bytes are in no store is never removed silently
    assert results == {"prep": "failed", "count": "ran", "fz": "up-to-date"}
    assert (root / "sub" / "out" / "stray.txt").exists()
    results = {o.stage: o.result for o in _runner(root).run(["prep"], force=True).outcomes}
    assert results == {"prep": "ran"}
    assert not (root / "sub" / "out" / "stray.txt").exists()  # outputs are removed before a stage runs
    assert (root / "log.txt").read_text() == "run\nrun\n"  # but not a persist: true one

    (root / "shipyard.yaml").write_text(RUN.replace("FROZEN", "true"))
    (root / "data" / "raw.txt").write_text("changed\n")
    (root / "twice.txt").unlink()
    runner, results = _run(root)
    assert results["fz"] == "frozen" and results["prep"] == "ran"
    assert (root / "twice.txt").read_text() == "raw\nraw\n"  # its recorded output, restored from the store
    assert [s.state for s in runner.status(["fz"])] == ["frozen"]


def test_a_frozen_stage_that_never_ran_is_an_error_that_says_so(tmp_path: Path) -> None:
    root = project(tmp_path, "version: 1\nstages:\n  fz:\n    frozen: true\n    cmd: echo x > x.txt\n"
                             "    outs: [x.txt]\n")
    from shipyard.wiring import open_pipeline, settings_from_environment

    environ = {**os.environ, "SHIPYARD_HOME": str(root / ".shipyard")}
    report = open_pipeline(settings_from_environment(environ, root), environ).run()
    [outcome] = report.outcomes
    assert outcome.result == "failed" and "is frozen (frozen: true) but has never run" in outcome.detail
    assert not (root / "x.txt").exists()


def test_a_foreach_groups_name_selects_its_stages(tmp_path: Path) -> None:
    root = project(tmp_path, "version: 1\nstages:\n  t:\n    foreach: [a, data/b]\n    do:\n      cmd: x\n  u:\n"
                             "    cmd: y\n")
    pipeline = dag.build(load_config(root), root)
    assert pipeline.select(["t"]) == ["t@a", "t@data/b"] and pipeline.select(["t@a"]) == ["t@a"]
    with pytest.raises(NotFoundError, match="unknown stage 'tt'"):
        pipeline.select(["tt"])


# -- outputs are removed before a stage runs: never what cannot be had back -----------------------------------------
def test_an_output_that_is_an_input_git_data_or_a_venv_is_refused_before_anything_is_removed(tmp_path: Path) -> None:
    import subprocess

    from shipyard.core.workspace.add import add
    from shipyard.wiring import open_workspace, settings_from_environment

    root = project(tmp_path, "stages:\n  s:\n    cmd: echo\n    outs: [src]\n",
                   **{"src__train.py": "print('v1')\n", "params.yaml": "lr: 1\n", "venv__pyvenv.cfg": "home = x\n",
                      "data__a.txt": "a\n"})
    git = {**os.environ, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "a",
           "GIT_COMMITTER_EMAIL": "a@x"}
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "src"], cwd=root, check=True, env=git)
    (root / "src" / "train.py").write_text("print('v2, not committed')\n")
    with pytest.raises(ConfigError, match=r"^stage 's' declares src as an output, but git tracks it .*git rm -r "):
        _runner(root)
    environ = {**os.environ, "SHIPYARD_HOME": str(root / ".shipyard")}
    add(open_workspace(settings_from_environment(environ, root)), [root / "data"])
    cases = {
        "outs: [data/a.txt]": r"but data is tracked with `shipyard data add`",
        "params: [lr]\n    outs: [params.yaml]": r"but it is \(or holds\) the params file params.yaml stage 's' reads",
        "outs: [venv]": r"it is a Python virtualenv \(it holds pyvenv.cfg\)",
        "metrics: [.git/hooks/pre-commit]": r"^shipyard.yaml:4: stages.s.metrics: '.git/hooks/pre-commit' is refused: "
                                            r"it is inside .git/, which belongs to version control",
        "wdir: .git\n    outs: [hooks/x]": r"stage 's' output '.git/hooks/x' is refused: it is inside .git/",
        "plots: [sub/.shipyard/x]": r"is inside sub/.shipyard/, which belongs to Shipyard",
    }
    for decl, message in cases.items():
        (root / "shipyard.yaml").write_text(f"stages:\n  s:\n    cmd: echo\n    {decl}\n")
        with pytest.raises(ConfigError, match=message) as exc:
            _runner(root)
        assert len(str(exc.value).splitlines()) == 1
    assert (root / "src" / "train.py").read_text() == "print('v2, not committed')\n"
    assert (root / "data" / "a.txt").exists() and (root / "params.yaml").exists() and (root / "venv").is_dir()
    # cache: false outputs are git's to keep: declared so, a tracked file is fine, and left in place for the stage
    (root / "shipyard.yaml").write_text("stages:\n  s:\n    cmd: echo\n    outs:\n"
                                        "      - src:\n          cache: false\n")
    assert {o.stage: o.result for o in _runner(root).run().outcomes} == {"s": "ran"}
    assert (root / "src" / "train.py").read_text() == "print('v2, not committed')\n"


def test_an_output_whose_bytes_are_in_no_store_is_not_removed_without_force(tmp_path: Path) -> None:
    root = project(tmp_path, "stages:\n  s:\n    cmd: echo generated > out.txt\n    outs: [out.txt]\n",
                   **{"out.txt": "there before the stage ever ran\n"})
    [outcome] = _runner(root).run().outcomes
    assert outcome.result == "failed", outcome
    assert outcome.detail == ("stage 's' would remove its outputs before it runs, but 1 file(s) have changes that are "
                              "not in the store and would be lost: out.txt; move them away (or copy what you need) "
                              "and run again, or pass --force to overwrite")
    assert (root / "out.txt").read_text() == "there before the stage ever ran\n"
    (root / "out.txt").unlink()
    assert [o.result for o in _runner(root).run().outcomes] == ["ran"]
    (root / "shipyard.yaml").write_text("stages:\n  s:\n    cmd: echo generated2 > out.txt\n    outs: [out.txt]\n")
    assert [o.result for o in _runner(root).run().outcomes] == ["ran"]  # its last run's bytes are stored: removed
    (root / "out.txt").write_text("hand-edited, not stored\n")
    (root / "shipyard.yaml").write_text("stages:\n  s:\n    cmd: echo generated3 > out.txt\n    outs: [out.txt]\n")
    [outcome] = _runner(root).run().outcomes
    assert outcome.result == "failed" and "would be lost: out.txt" in outcome.detail
    assert (root / "out.txt").read_text() == "hand-edited, not stored\n"
    assert [o.result for o in _runner(root).run(force=True).outcomes] == ["ran"]
    assert (root / "out.txt").read_text() == "generated3\n"
