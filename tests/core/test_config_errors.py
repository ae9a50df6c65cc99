"""shipyard.yaml errors: the file, the line, the key, in Shipyard's words; one suggestion for a misspelled key."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.core.project.loader import load_config, parse_config
from shipyard.errors import ConfigError

# Phrases of pydantic that must never reach a user.
PYDANTIC_WORDS = ("Field required", "Input should", "Extra inputs", "validation error", "Value error", "type=",
                  "For further information", "(and 1 more)")


def refused(text: str) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_config(text)
    message = str(exc.value)
    assert len(message.splitlines()) == 1, message
    for words in PYDANTIC_WORDS:
        assert words not in message, message
    return message


def test_a_misspelled_command_key_names_the_key_its_line_and_the_right_spelling() -> None:
    message = refused("version: 1\nstages:\n  train:\n    command: python train.py\n    deps: [data]\n")
    assert message == "shipyard.yaml:4: unknown key 'command' in stages.train (did you mean 'cmd'?)"


def test_a_bad_output_option_names_the_option_not_the_unions_members() -> None:
    text = ("stages:\n  h:\n    cmd: x\n    outs:\n      - reports/history.csv:\n          persist: true\n"
            "          cache: 'no'\n")
    assert refused(text) == ("shipyard.yaml:7: stages.h.outs.0.reports/history.csv.cache: should be true or false "
                             "(got str 'no')")
    assert refused("stages:\n  h:\n    cmd: x\n    outs:\n      - 3\n") == \
        "shipyard.yaml:5: stages.h.outs.0: should be text (got int 3)"


@pytest.mark.parametrize(("text", "expected"), [
    ("version: 1\nstage:\n  a:\n    cmd: x\n",
     "shipyard.yaml:2: unknown key 'stage' in shipyard.yaml's top level (did you mean 'stages'?)"),
    ("version: 1\ndefault-remote: origin\n",
     "shipyard.yaml:2: unknown key 'default-remote' in shipyard.yaml's top level (did you mean 'default_remote'?)"),
    ("version: 1\nexecutor:\n  kind: ray\n  adress: 127.0.0.1:6379\n",
     "shipyard.yaml:4: unknown key 'adress' in executor (did you mean 'address'?)"),
    ("version: 1\nremotes:\n  origin:\n    url: s3://b/p\n    endpoint: http://127.0.0.1:9000\n",
     "shipyard.yaml:5: unknown key 'endpoint' in remotes.origin (did you mean 'endpoint_url'?)"),
    ("version: 1\nstages:\n  a:\n    cmd: x\n    outputs: [m]\n",
     "shipyard.yaml:5: unknown key 'outputs' in stages.a (did you mean 'outs'?)"),
    ("version: 1\nstages:\n  a:\n    cmd: x\n    zzz: 1\n",
     "shipyard.yaml:5: unknown key 'zzz' in stages.a (known keys: cmd, desc, deps, params, outs, metrics, plots, "
     "env, wdir, frozen, always_changed, meta)"),
])
def test_unknown_keys_anywhere_get_their_line_and_one_suggestion(text: str, expected: str) -> None:
    assert refused(text) == expected


def test_a_wrong_default_remote_is_reported_at_its_line_listing_the_defined_remotes() -> None:
    text = "version: 1\nremotes:\n  origin:\n    url: /srv/a\n  backup:\n    url: /srv/b\ndefault_remote: orgin\n"
    message = refused(text)
    assert message.startswith("shipyard.yaml:7: default_remote 'orgin' is not one of the remotes defined")
    assert "(origin, backup)" in message and "did you mean 'origin'?" in message


def test_a_default_remote_without_any_remote_says_so() -> None:
    message = refused("version: 1\n\ndefault_remote: origin\n")
    assert message.startswith("shipyard.yaml:3: default_remote 'origin'") and "no remotes are defined" in message


@pytest.mark.parametrize(("text", "expected"), [
    ("version: 1\nstages:\n  train:\n    deps: [a]\n", "shipyard.yaml:3: stages.train: missing key 'cmd'"),
    ("version: 2\n", "shipyard.yaml:1: version: should be 1"),
    ("version: 1\nexecutor:\n  kind: dask\n", "shipyard.yaml:3: executor.kind: should be 'local' or 'ray'"),
    ("version: 1\nexecutor:\n  num_cpus: many\n", "shipyard.yaml:3: executor.num_cpus: should be a number"),
    ("version: 1\nremotes:\n  origin: /srv/x\n", "shipyard.yaml:3: remotes.origin: should be a mapping"),
    ("version: 1\nremotes:\n  o:\n    url: /x\n    allow_http: 'yes'\n",
     "shipyard.yaml:5: remotes.o.allow_http: should be true or false"),
    ("version: 1\nstages: []\n", "shipyard.yaml:2: stages: should be a mapping"),
    ("version: 1\nstages:\n  a:\n    cmd: [1, 2]\n", "shipyard.yaml:4: stages.a.cmd: should be text"),
    ("version: 1\nstages:\n  1:\n    cmd: x\n", "shipyard.yaml:3: stages: the name 1 should be text; quote it"),
    ("version: 1\nstages:\n  a:\n    cmd: x\n    deps: 3\n",
     "shipyard.yaml:5: stages.a.deps: should be a list of strings"),
])
def test_type_errors_are_in_plain_words(text: str, expected: str) -> None:
    assert refused(text).startswith(expected)


def test_several_problems_are_counted_in_plain_words() -> None:
    message = refused("version: 1\nstages:\n  a:\n    deps: [x]\n  b:\n    deps: [y]\n")
    assert message == "shipyard.yaml:3: stages.a: missing key 'cmd' (and 1 more problem)"


def test_from_a_subfolder_the_file_is_named_as_seen_from_there(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shipyard.yaml").write_text("version: 1\nstages:\n  train:\n    command: x\n")
    (tmp_path / "src").mkdir()
    monkeypatch.chdir(tmp_path / "src")
    with pytest.raises(ConfigError, match=r"^\.\./shipyard\.yaml:4: unknown key 'command' in stages\.train"):
        load_config(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^shipyard\.yaml:4: "):
        load_config(tmp_path)


def test_the_template_s_example_stages_are_valid_once_uncommented() -> None:
    """The template once said `stages: {}` above its commented examples: uncommenting them was a YAML error."""
    from shipyard.core.project.loader import parse_config
    from shipyard.core.project.template import TEMPLATE

    assert parse_config(TEMPLATE).stages == {}
    head, tail = TEMPLATE.split("\nstages:\n")
    uncommented = "\n".join(line.replace("  # ", "  ", 1) for line in tail.splitlines())
    assert sorted(parse_config(f"{head}\nstages:\n{uncommented}\n").stages) == ["prepare", "train"]
