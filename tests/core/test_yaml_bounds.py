"""Invariant 7: a tiny YAML file cannot make Shipyard use memory or time out of proportion (issue 7, finding 6).

Each hostile file is a "billion laughs": nine levels of nine aliases, a few hundred bytes that
describe 9**9 nodes to whoever walks them. Every place Shipyard reads YAML refuses it with one line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.core.boundedyaml import MAX_ALIAS_CHARS, MAX_ALIAS_NODES, MAX_BYTES, load_json, load_yaml
from shipyard.core.pipelines.params import ParamFiles
from shipyard.core.pipelines.runner import read_metrics
from shipyard.core.project.loader import load_config, parse_config
from shipyard.core.workspace.lockfile import Lock, StageEntry, load_lock, save_lock
from shipyard.errors import ConfigError, StageFailed
from tests.conftest import cli_env, shipyard


def laughs(indent: str = "") -> str:
    """Nine anchored lists, each holding nine aliases of the one before: 9**9 leaves once expanded."""
    lines = [f'{indent}l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"{indent}l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


HOSTILE_CONFIG = "version: 1\nx-defaults:\n" + laughs("  ")
HOSTILE_PARAMS = "train:\n" + laughs("  ") + "  c: *l8\n"
HOSTILE_LOCK = "version: 1\ndata:\n  big:\n    digest: sha256:00\n    size: 1\n    extra:\n" + laughs("      ")


def assert_refused(exc: pytest.ExceptionInfo[ConfigError], source: str) -> None:
    message = str(exc.value)
    assert message.startswith(f"{source}:") and "refused: aliases expand to more than" in message
    assert len(message.splitlines()) == 1 and len(message) < 300


def test_hostile_shipyard_yaml_is_refused(tmp_path: Path) -> None:
    assert len(HOSTILE_CONFIG) < 600
    (tmp_path / "shipyard.yaml").write_text(HOSTILE_CONFIG)
    with pytest.raises(ConfigError) as exc:
        load_config(tmp_path)
    assert_refused(exc, "shipyard.yaml")


def test_hostile_params_yaml_is_refused_when_a_stage_uses_it(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text(HOSTILE_PARAMS)
    with pytest.raises(ConfigError) as exc:
        ParamFiles(tmp_path, "params.yaml").values("train", ("train.c",))
    assert_refused(exc, "params.yaml")


def test_hostile_shipyard_lock_is_refused(tmp_path: Path) -> None:
    (tmp_path / "shipyard.lock").write_text(HOSTILE_LOCK)
    with pytest.raises(ConfigError) as exc:
        load_lock(tmp_path)
    assert_refused(exc, "shipyard.lock")
    assert str(exc.value).endswith("restore it from git")


def test_the_cli_says_one_line_for_a_hostile_config(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text(HOSTILE_CONFIG)
    done = shipyard("status", env=cli_env(SHIPYARD_HOME=str(tmp_path / ".shipyard")), cwd=tmp_path, check=False)
    assert done.returncode == 2
    assert "shipyard.yaml:" in done.stderr and "refused" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("text", "problem"), [
    ("a: &a [*a]\n", "refers to a node that contains it"),
    ("[" * 500 + "]" * 500, "nested more than"),
    ("a: [1,\n", "not valid YAML"),
])
def test_cycles_depth_and_syntax_errors_are_one_line(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as exc:
        load_yaml(text, "f.yaml")
    assert str(exc.value).startswith("f.yaml:") and len(str(exc.value).splitlines()) == 1


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    (tmp_path / "shipyard.lock").write_bytes(b"# padding\n" * (MAX_BYTES // 10 + 1))
    with pytest.raises(ConfigError, match=r"^shipyard\.lock: refused: larger than"):
        load_lock(tmp_path)


def test_ordinary_anchors_and_merge_keys_still_work() -> None:
    text = "base: &base {cmd: python x.py, deps: [a, b]}\n" \
           "stages:\n" + "".join(f"  s{i}:\n    <<: *base\n    outs: [o{i}]\n" for i in range(50))
    data = load_yaml(text, "shipyard.yaml")
    assert data["stages"]["s49"] == {"cmd": "python x.py", "deps": ["a", "b"], "outs": ["o49"]}
    wide = "a: &a [" + ",".join(["1"] * 100) + "]\nb: [" + ",".join(["*a"] * (MAX_ALIAS_NODES // 101)) + "]\n"
    assert len(load_yaml(wide, "params.yaml")["b"]) == MAX_ALIAS_NODES // 101


def test_line_numbers_survive_in_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"^shipyard.yaml:4: stages.a.cmd: "):
        parse_config("version: 1\nstages:\n  a:\n    cmd: [1, 2]\n")


def test_shipyard_lock_is_written_without_aliases(tmp_path: Path) -> None:
    shared = {"lr": 0.1, "layers": [8, 4]}  # two stages reading the same params mapping
    lock = Lock(stages={s: StageEntry("sha256:" + "0" * 64, None, "x", {}, {"train": shared}, {}) for s in "ab"})
    save_lock(tmp_path, lock)
    text = (tmp_path / "shipyard.lock").read_text()
    assert "&" not in text and "*" not in text
    assert load_lock(tmp_path).stages["b"].params == {"train": shared}


def test_aliases_are_charged_by_the_characters_they_expand_to(tmp_path: Path) -> None:
    """Attack finding 7: few aliases (far under the node limit) of one long string are a huge string.

    The attack's 83 KB params.yaml (20,000 characters, 9,000 aliases) described 180 MB; this one is
    7 KB for 1.2 MB, refused at the alias that crosses the bound, before anything is built.
    """
    aliases = MAX_ALIAS_CHARS // 2000 + 100
    assert aliases < MAX_ALIAS_NODES
    (tmp_path / "params.yaml").write_text("big: &b " + "A" * 2000 + "\np:\n" + "  - *b\n" * aliases)
    with pytest.raises(ConfigError) as exc:
        ParamFiles(tmp_path, "params.yaml").values("s", ("p",))
    message = str(exc.value)
    assert message.startswith(f"params.yaml:{MAX_ALIAS_CHARS // 2000 + 3}: refused: aliases expand to more than")
    assert f"{MAX_ALIAS_CHARS} characters" in message and len(message.splitlines()) == 1


def test_characters_are_counted_through_nested_aliases_and_mapping_keys() -> None:
    key = "k" * 1000
    text = f"a: &a {{{key}: v}}\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [" + ", ".join(["*b"] * 100) + "]\n"
    with pytest.raises(ConfigError, match="characters"):  # 1,000 expansions of a 1,001-character mapping
        load_yaml(text, "f.yaml")


def test_aliases_may_add_as_much_as_a_large_document_holds() -> None:
    padding = "x" * (MAX_ALIAS_CHARS + 100_000)
    text = f"pad: {padding}\nbig: &b {'B' * 100_000}\nuse: [" + ", ".join(["*b"] * 10) + "]\n"
    assert len(load_yaml(text, "params.yaml")["use"]) == 10  # 1,000,000 added: under the document's own size
    with pytest.raises(ConfigError, match="characters"):
        load_yaml(text.replace(", ".join(["*b"] * 10), ", ".join(["*b"] * 14)), "params.yaml")


def test_a_metrics_file_over_the_size_limit_fails_the_stage_in_one_line(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.json"
    with open(metrics, "wb") as f:  # sparse: costs no disk, and no memory beyond the bounded read
        f.truncate(MAX_BYTES + 1)
    with pytest.raises(StageFailed) as exc:
        read_metrics(metrics, "metrics.json")
    assert str(exc.value).startswith("metrics file metrics.json: refused: larger than the 8 MiB")
    assert len(str(exc.value).splitlines()) == 1


def test_metrics_files_under_the_limit_are_read(tmp_path: Path) -> None:
    (tmp_path / "m.json").write_text('{"acc": 0.5, "nested": {"loss": 2}, "flag": true, "name": "x"}')
    (tmp_path / "m.yaml").write_text("acc: 0.25\n")
    assert read_metrics(tmp_path / "m.json", "m.json") == {"acc": 0.5, "nested.loss": 2.0}
    assert read_metrics(tmp_path / "m.yaml", "m.yaml") == {"acc": 0.25}
    (tmp_path / "bad.json").write_text("{1: 2}")
    with pytest.raises(StageFailed, match=r"^metrics file bad.json: not valid JSON: "):
        read_metrics(tmp_path / "bad.json", "bad.json")


def test_json_has_the_size_bound_of_yaml() -> None:
    with pytest.raises(ConfigError, match=r"^p.json: refused: larger than"):
        load_json(b" " * (MAX_BYTES + 1), "p.json")
    assert load_json(b'{"a": [1]}', "p.json") == {"a": [1]}


@pytest.mark.parametrize("deep", [
    "x: " + "[" * 150 + "]" * 150,  # flow collections
    "- " * 150 + "x\n",  # compact sequences on one line
    "".join(f"{'  ' * i}k{i}:\n" for i in range(150)) + "  " * 150 + "v\n",  # indentation
])
def test_no_fast_path_for_what_could_nest_deeply(deep: str) -> None:
    assert "&" not in deep  # nothing to expand: only the nesting can stop it
    with pytest.raises(ConfigError, match="levels deep"):
        load_yaml(deep, "params.yaml")


def test_plain_documents_load_the_same_either_way() -> None:
    plain = "a: 1\nb: [x, y]\nc:\n  d: 'q & r'\n  e: {f: 2}\n"  # the & in a string takes the counting path
    assert load_yaml(plain, "p.yaml") == load_yaml(plain.replace(" & ", " and "), "p.yaml") | {
        "c": {"d": "q & r", "e": {"f": 2}}}
    with pytest.raises(ConfigError, match="undefined alias"):
        load_yaml("a: *nothing\n", "p.yaml")


@pytest.mark.parametrize("text", [
    "stages:\n  a:\n    cmd: x\nparams: p.yaml\nstages:\n  b:\n    cmd: y\n",  # a block appended below
    "x: &k {a: 1}\ny: {a: 2, a: 3}\n",  # the counting path (an anchor) as well as libyaml's
])
def test_a_key_given_twice_is_refused_at_its_line(text: str) -> None:
    """PyYAML keeps the last of two equal keys: a second `stages:` silently replaced the pipeline."""
    with pytest.raises(ConfigError, match=r"^f\.yaml:\d+: not valid YAML: key '(stages|a)' is given twice"):
        load_yaml(text, "f.yaml")


def test_a_merge_key_may_still_be_overridden() -> None:
    assert load_yaml("base: &b {x: 1, y: 1}\nm:\n  <<: *b\n  x: 2\n", "f.yaml") == {
        "base": {"x": 1, "y": 1}, "m": {"x": 2, "y": 1}}
