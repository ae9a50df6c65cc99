"""Policy as code: the Rego bundle in policies/ (real regopy evaluation) decides at promote, deploy, a protected
alias and serve; each decision is audited with the bundle's and the input's digests."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.adapters.policy import opa
from shipyard.core.artifacts.digest import Digest
from shipyard.core.policy.decision import NO_BUNDLE
from shipyard.core.registry.records import POLICY_ACTION
from shipyard.errors import ConfigError, PolicyDeniedError
from shipyard.wiring import Services, build
from shipyard.wiring.gitops import promote
from shipyard.wiring.policy import engine, evaluate, init_bundle
from tests.conftest import cli_env
from tests.conftest import shipyard as run_cli
from tests.test_promote import bare, daemon, git, image, make_project, saved

__all__ = ["daemon", "saved"]  # the promote tests' fixtures: a git daemon on 127.0.0.1 and a saved model


@pytest.fixture
def svc(tmp_path: Path, daemon: tuple[str, Path], saved: Path) -> Iterator[Services]:
    """A project with the default policy bundle, a GitOps repository on the daemon, and m@1 built and pushed."""
    services = build(make_project(tmp_path / "proj", bare(daemon)), tmp_path / "proj")
    init_bundle(services.settings.project_root)
    mv = services.registry.register("m", saved)
    services.registry.record_result(mv, "build", {"image": "shipyard/m:1", "image_id": f"sha256:{'1' * 64}",
                                                  "engine": "docker", "pushed": image(1)}, "pushed")
    yield services
    services.close()


def policy_events(svc: Services) -> list[tuple[str, dict[str, object]]]:
    mv = svc.registry.resolve("m@1")
    return [(e.reason, r) for e, r in svc.registry.results(mv, POLICY_ACTION)]


def cli(svc: Services, *args: str) -> tuple[int, str, str]:
    env = cli_env(SHIPYARD_HOME=str(svc.settings.home), SHIPYARD_DB_URL=svc.settings.db_url, SHIPYARD_ACTOR="bob@ci")
    done = run_cli(*args, env=env, cwd=svc.settings.project_root, check=False)
    return done.returncode, done.stdout, done.stderr


def test_a_deny_blocks_promote_and_history_shows_its_reasons(svc: Services) -> None:
    with pytest.raises(PolicyDeniedError, match=r"^policy denied promote m@1 to production \(bundle sha256:") as caught:
        promote(svc, "m@1", "production")
    lines = str(caught.value).splitlines()
    assert "  - m@1 is not scanned yet: run `shipyard scan m@1` (offline: `shipyard scan m@1 --db DIR`)" in lines
    assert "  - m@1 is not signed: run `shipyard sign m@1`" in lines
    assert any(r.startswith("  - m@1 has incomplete lineage: no producing run is recorded") for r in lines)
    assert lines[-1] == "  `shipyard policy eval m@1 --action promote --env production` shows every check"
    assert svc.registry.resolve("m@1").aliases == ()  # nothing moved ...
    assert git("ls-remote", svc.settings.project_root.joinpath("shipyard.yaml").read_text().split()[2]) == ""
    [(summary, record)] = policy_events(svc)  # ... but the decision is in the history
    assert summary.startswith("policy deny promote m@1 to production: ")
    assert record["allowed"] is False and record["action"] == "promote" and record["env"] == "production"
    assert record["actor"] == "alice@laptop" and len(record["reasons"]) >= 3
    assert [f"  - {r}" for r in record["reasons"]] == lines[1:-1]  # the refusal lists exactly the recorded reasons
    bundle = engine(svc)
    assert bundle is not None and record["bundle"] == str(bundle.digest)
    with svc.store.open(Digest.parse(str(record["input"]))) as f:  # the input decided on
        stored = json.loads(f.read())
    assert stored["action"] == "promote" and stored["version"]["ref"] == "m@1"
    assert stored["image"] == {"ref": image(1), "verified": False, "names": sorted({image(1), "shipyard/m:1",
                                                                                    f"sha256:{'1' * 64}"}),
                               "verify": None}
    history = run_cli("models", "history", "m", "--json", env=cli_env(SHIPYARD_HOME=str(svc.settings.home),
                      SHIPYARD_DB_URL=svc.settings.db_url), cwd=svc.settings.project_root).stdout
    assert "policy deny promote m@1 to production: " in history


def test_an_allow_records_the_bundle_digest(svc: Services) -> None:
    done = promote(svc, "m@1", "staging")  # outside production the findings are notes
    assert done.alias_moved and done.decision.allowed
    [(summary, record)] = policy_events(svc)
    bundle = engine(svc)
    assert bundle is not None
    assert summary == f"policy allow promote m@1 to staging (bundle {bundle.digest})"
    assert record["allowed"] is True and record["bundle"] == str(bundle.digest) and record["reasons"] == []
    assert [v.gate for v in done.decision.verdicts][-1] == "policy"


def test_policy_eval_is_a_dry_run_and_exits_as_a_denied_gate(svc: Services) -> None:
    code, out, _ = cli(svc, "policy", "eval", "m@1", "--action", "promote", "--env", "production", "--json")
    assert code == PolicyDeniedError.exit_code
    shown = json.loads(out)
    assert shown["allowed"] is False and shown["input_document"]["env"] == "production"
    assert {c["check"]: c["passed"] for c in shown["checks"]}["signed"] is False
    assert policy_events(svc) == []  # nothing recorded
    code, out, _ = cli(svc, "policy", "eval", "m@1", "--env", "staging")
    assert code == 0 and "policy allow promote m@1 to staging" in out and "not required in staging" in out


def test_a_protected_alias_is_gated_and_others_move_freely(svc: Services) -> None:
    code, _, err = cli(svc, "alias", "set", "m", "production", "1")
    assert code == PolicyDeniedError.exit_code and "policy denied alias m@1 to production" in err
    assert "production" not in svc.registry.resolve("m@1").aliases
    code, out, _ = cli(svc, "alias", "set", "m", "candidate", "1")
    assert code == 0 and "m@candidate" in out
    assert [r["action"] for _, r in policy_events(svc)] == ["alias"]


def test_serve_with_require_on_serve_is_refused_before_loading(svc: Services) -> None:
    root = svc.settings.project_root
    (root / "shipyard.yaml").write_text((root / "shipyard.yaml").read_text() + "policy:\n  require_on_serve: true\n"
                                        "  production: [production, prod]\n")
    svc.registry.set_alias("m", "prod", 1, "by hand, before the policy")
    code, _, err = cli(svc, "serve", "m@prod", "--port", "1")  # port 1: it never gets as far as listening
    assert code == PolicyDeniedError.exit_code and "policy denied serve m@1 to production" in err
    assert [r["action"] for _, r in policy_events(svc)] == ["serve"]


def test_without_a_policies_folder_the_gates_pass_and_record_nothing(svc: Services) -> None:
    for name in ("shipyard.rego", "shipyard_test.rego"):
        (svc.settings.project_root / "policies" / name).unlink()
    (svc.settings.project_root / "policies").rmdir()
    decision = evaluate(svc, svc.registry.resolve("m@1"), "promote", "production")
    assert decision.allowed and not decision.evaluated and decision.notes == (NO_BUNDLE,)
    assert policy_events(svc) == []


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_policy_test_runs_the_default_bundles_own_tests_and_a_broken_one_fails(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "shipyard.yaml").write_text("version: 1\n")
    init_bundle(root)
    env = cli_env(SHIPYARD_HOME=str(root / ".shipyard"))
    done = json.loads(run_cli("policy", "test", "--json", env=env, cwd=root).stdout)
    assert done["failed"] == 0 and done["passed"] >= 15
    names = {t["test"] for t in done["tests"]}
    assert "data.shipyard_test.test_a_critical_finding_is_denied" in names
    write(root / "policies", {"broken_test.rego": "package broken_test\n\nimport rego.v1\n\n"
                                                  "test_staging_is_production if {\n"
                                                  "\tenv_ := \"staging\"\n"
                                                  "\tdata.shipyard.production with input.env as env_\n}\n"})
    failed = run_cli("policy", "test", env=env, cwd=root, check=False)
    assert failed.returncode == 1
    assert "FAIL data.broken_test.test_staging_is_production: undefined, not true" in failed.stdout


def test_bad_rego_is_one_line_naming_the_file_and_line(tmp_path: Path) -> None:
    folder = write(tmp_path / "policies", {"x.rego": "package shipyard\n\ndecision := {\n  \"allow\": true,\n"})
    with pytest.raises(ConfigError) as caught:
        opa.load_bundle(folder)
    assert str(caught.value).startswith("policies/x.rego:3: ") and "\n" not in str(caught.value)


def test_a_bundle_without_a_decision_fails_closed(svc: Services) -> None:
    write(svc.settings.project_root / "policies", {"shipyard.rego": "package shipyard\n\nallow := true\n"})
    with pytest.raises(ConfigError, match=r"data\.shipyard\.decision is undefined"):
        promote(svc, "m@1", "staging")
    assert svc.registry.resolve("m@1").aliases == ()


def test_a_string_in_the_input_cannot_forge_the_decision(tmp_path: Path) -> None:
    """rego-cpp prints strings without escaping them: an input string that closes one and opens ``allow`` must
    neither forge a key of the decision nor break it."""
    folder = write(tmp_path / "policies", {"p.rego": "package shipyard\n\nimport rego.v1\n\n"
                                                     "decision := {\"allow\": false, \"reasons\": [input.actor]}\n"})
    forged = 'x"], "allow": true, "z": ["\\'
    decided = opa.load_bundle(folder).decide({"actor": forged})
    assert decided["allow"] is False and decided["reasons"] == ["x'], 'allow': true, 'z': [''"]


def test_a_hostile_bundle_folder_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret.rego"
    outside.write_text("package secret\n")
    linked = write(tmp_path / "linked", {"a.rego": "package shipyard\n"})
    os.symlink(outside, linked / "b.rego")
    with pytest.raises(ConfigError, match=r"b\.rego is a link to .*outside the policy bundle"):
        opa.read_bundle(linked)
    inside = write(tmp_path / "inside", {"a.rego": "package shipyard\n"})
    os.symlink(inside / "a.rego", inside / "b.rego")  # a link inside the folder is read
    assert [f.path for f in opa.read_bundle(inside)] == ["a.rego", "b.rego"]
    huge = write(tmp_path / "huge", {"a.rego": "package shipyard\n"})
    with open(huge / "big.json", "wb") as f:
        f.truncate(opa.MAX_FILE_BYTES + 1)
    with pytest.raises(ConfigError, match=r"big\.json is \d+ bytes, past the"):
        opa.read_bundle(huge)
    many = write(tmp_path / "many", {f"r{i}.rego": "package shipyard\n" for i in range(opa.MAX_FILES + 1)})
    with pytest.raises(ConfigError, match="more than 200 policy files"):
        opa.read_bundle(many)


PASSING = {"action": "promote", "env": "production", "actor": "alice@laptop", "now": 0, "today": "2026-01-01",
           "settings": {"production": ["production"], "primary_metric": "accuracy", "margin": 0.01},
           "version": {"name": "iris", "version": 3, "ref": "iris@3", "metrics": {"accuracy": 0.95}},
           "lineage": {"complete": True, "run": "r1", "recorded": True, "data": {"data/iris.csv": "sha256:" + "0" * 64},
                       "code": "0" * 40, "dirty": False, "diff": None, "clean": True, "missing": []},
           "verify": [{"image": image(3), "passed": True}], "image": {"ref": image(3), "verified": True},
           "scan": {"checked": True, "source": "offline:/db", "findings": [
               {"id": "GHSA-1", "package": "p", "version": "1", "severity": "medium", "fixed": [], "waived": False}]},
           "signature": {"signed": True, "verified": True, "key": "sha256:" + "2" * 64, "reason": ""},
           "metrics": {"primary": "accuracy", "higher_is_better": True, "margin": 0.01, "candidate": 0.95,
                       "current": 0.94, "current_version": 2, "delta": 0.01, "worse_by": -0.01}}


def test_the_bundle_compiles_once_per_digest(tmp_path: Path) -> None:
    init_bundle(tmp_path)
    engine_, document = opa.load_bundle(tmp_path / "policies"), PASSING
    assert opa.load_bundle(tmp_path / "policies") is engine_  # the same compiled bundle
    assert engine_.decide(document)["allow"] is True
    assert engine_.decide({**document, "env": "production", "signature": {"verified": False}})["allow"] is False


def test_deploy_asks_the_policy_for_the_image_it_renders(svc: Services) -> None:
    from shipyard.wiring.deploy import render_environment

    with pytest.raises(PolicyDeniedError, match=r"^policy denied deploy m@1 to production \(bundle sha256:") as caught:
        render_environment(svc, "m@1", "production")
    with pytest.raises(PolicyDeniedError) as promoted:
        promote(svc, "m@1", "production")
    # deploy and promote refuse the same way: the same reasons, each whole, and the command that shows them all
    assert str(caught.value).splitlines()[1:-1] == str(promoted.value).splitlines()[1:-1]
    assert str(caught.value).splitlines()[-1] == ("  `shipyard policy eval m@1 --action deploy --env production` "
                                                  "shows every check")
    rendered = render_environment(svc, "m@1", "staging")
    assert rendered.image == image(1)
    assert [(r["action"], r["env"], r["allowed"]) for _, r in policy_events(svc)] == [
        ("deploy", "production", False), ("promote", "production", False), ("deploy", "staging", True)]


def test_init_writes_the_default_bundle_and_policy_init_never_overwrites(tmp_path: Path) -> None:
    env = cli_env(SHIPYARD_HOME=str(tmp_path / ".shipyard"))
    run_cli("init", env=env, cwd=tmp_path)
    assert (tmp_path / "policies" / "shipyard.rego").read_bytes().startswith(b"# Shipyard's default policy bundle")
    (tmp_path / "policies" / "shipyard.rego").write_text("package shipyard\n# mine\n")
    again = run_cli("policy", "init", env=env, cwd=tmp_path).stdout
    assert "kept  policies/shipyard.rego (it exists)" in again
    assert (tmp_path / "policies" / "shipyard.rego").read_text() == "package shipyard\n# mine\n"


def test_require_signed_stops_promote_and_deploy_before_the_policy(svc: Services) -> None:
    """With signing.require_signed, promote and deploy check the signature first: unsigned, then tampered (one
    byte of a stored file flipped), are refused with SignatureError, and nothing is recorded or pushed."""
    from shipyard.errors import SignatureError
    from shipyard.wiring.deploy import render_environment
    from shipyard.wiring.signing import generate_keys, sign_version
    from tests.test_signing import flip_a_byte

    root = svc.settings.project_root
    generate_keys(root / "keys" / "team")
    with open(root / "shipyard.yaml", "a") as f:
        f.write("signing: {key: keys/team.key, trusted_keys: [keys/team.pub], require_signed: true}\n")
    for attempt in (lambda: promote(svc, "m@1", "staging"), lambda: render_environment(svc, "m@1", "staging")):
        with pytest.raises(SignatureError, match=r"^m@1 .*not signed"):
            attempt()
    mv = svc.registry.resolve("m@1")
    sign_version(svc, mv)
    assert promote(svc, "m@1", "staging").alias_moved  # signed: the policy decides, and staging allows
    flip_a_byte(svc, mv)
    for attempt in (lambda: promote(svc, "m@1", "production"), lambda: render_environment(svc, "m@1", "staging")):
        with pytest.raises(SignatureError, match=r"no longer matches its signed digest"):
            attempt()
    assert [(r["action"], r["env"]) for _, r in policy_events(svc)] == [("promote", "staging")]


def test_lineage_from_a_dirty_tree_is_complete_when_its_diff_is_stored(tmp_path: Path) -> None:
    """The usual workflow (change params, `shipyard run`, then commit) records a dirty tree with its diff: as
    reproducible as a commit, so complete; `clean` still says which, for a team's own Rego."""
    from shipyard.core.lineage.records import CodeVersion, RunRecord, RunStatus
    from shipyard.core.policy.document import lineage_part

    def run(code: CodeVersion, inputs: dict[str, Digest]) -> RunRecord:
        return RunRecord("r1", "train", "default", RunStatus.FINISHED, 0.0, 1.0, "u", "h", 1, code=code,
                         inputs=inputs)

    data = {"data/iris.csv": Digest.of_bytes(b"x")}
    diff = Digest.of_bytes(b"diff")
    dirty = lineage_part("r1", run(CodeVersion("c" * 40, dirty=True, diff_digest=diff), data))
    assert dirty["complete"] is True and dirty["clean"] is False and dirty["diff"] == str(diff)
    assert dirty["missing"] == [] and dirty["recorded"] is True
    clean = lineage_part("r1", run(CodeVersion("c" * 40), data))
    assert clean["complete"] is True and clean["clean"] is True and clean["diff"] is None
    lost = lineage_part("r1", run(CodeVersion("c" * 40, dirty=True), data))
    assert lost["complete"] is False and lost["missing"] == ["the uncommitted diff"]
    bare_run = lineage_part("r1", run(CodeVersion(), {}))
    assert bare_run["missing"] == ["data digests", "code commit"]
    assert lineage_part(None, None)["missing"] == ["producing run"] and not lineage_part("r9", None)["recorded"]
    init_bundle(tmp_path)
    engine_ = opa.load_bundle(tmp_path / "policies")
    assert engine_.decide({**PASSING, "lineage": dirty})["allow"] is True
    decided = engine_.decide({**PASSING, "lineage": lost})
    assert decided["reasons"] == ["iris@3 has incomplete lineage: its run r1 had uncommitted changes and did not "
                                  "store their diff: commit your changes, then `shipyard run` again (a new version)"]


def test_reasons_are_never_cut_mid_command_and_a_cut_ends_with_an_ellipsis() -> None:
    from shipyard.core.deploy.promotion import one_line
    from shipyard.core.policy.decision import MAX_SUMMARY, PolicyDecision, read_decision

    pinned = f"registry.example.com/acme/iris@sha256:{'f5' * 32}"
    reason = (f"iris@2 has no passing verify in the image {pinned}: run `shipyard verify iris@2 --image {pinned}`")
    _, reasons, *_ = read_decision({"allow": False, "reasons": [reason]})
    assert reasons == (reason,)  # whole: ~250 characters, two pinned references
    cut = one_line("x" * 3000)
    assert cut.endswith("…") and len(cut) == 2000 and one_line("a\nb", 2) == "a…"
    many = tuple(f"reason {i}: run `shipyard verify iris@2 --image {pinned}`" for i in range(5))
    decision = PolicyDecision("promote", "production", "iris@2", "a", False, many, "sha256:b", "sha256:i")
    summary = decision.summary()
    assert len(summary) <= MAX_SUMMARY and summary.endswith(" more")
    shown = summary.split(": ", 1)[1].rsplit("; and ", 1)[0].split("; ")
    assert shown == list(many[:len(shown)])  # whole reasons only
    huge = PolicyDecision("promote", "production", "iris@2", "a", False, ("y" * 900,), "sha256:b", "sha256:i")
    assert len(huge.summary()) == MAX_SUMMARY and huge.summary().endswith("…")


def test_policy_eval_needs_a_known_environment_and_shows_what_is_not_configured(
        svc: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from shipyard.errors import InvalidInputError
    from shipyard.interfaces.cli.policy import app

    monkeypatch.chdir(svc.settings.project_root)
    for key, value in {"SHIPYARD_HOME": str(svc.settings.home), "SHIPYARD_DB_URL": svc.settings.db_url}.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner()
    missing = runner.invoke(app, ["eval", "m@1"])
    assert isinstance(missing.exception, InvalidInputError)
    assert str(missing.exception) == "--env is required for --action promote: one of staging, production"
    typo = runner.invoke(app, ["eval", "m@1", "--env", "prod"])
    assert isinstance(typo.exception, InvalidInputError) and "did you mean 'production'?" in str(typo.exception)
    protected = runner.invoke(app, ["eval", "m@1", "--action", "alias", "--env", "candidate"])
    assert isinstance(protected.exception, InvalidInputError)  # not a protected alias either
    assert "--env" in runner.invoke(app, ["eval", "--help"]).output
    staging = runner.invoke(app, ["eval", "m@1", "--env", "staging"])
    assert staging.exit_code == 0, staging.output
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in staging.output.splitlines()
            if line.count("│") == 3}
    assert rows["metric"] == "n/a" and rows["signed"] == "note"  # no policy.primary_metric: not a pass
    assert "note: metric not compared: no policy.primary_metric in shipyard.yaml" in staging.output
    assert "note: (not required in staging) m@1 is not signed: run `shipyard sign m@1`" in staging.output
    served = runner.invoke(app, ["eval", "m@1", "--action", "serve", "--json"])
    shown = json.loads(served.output)
    assert shown["allowed"] is True and shown["env"] is None
    assert any(n.startswith("(not required without an environment) ") for n in shown["notes"])
    assert {c["check"]: c["skipped"] for c in shown["checks"]}["metric"] is True


def test_governance_config_errors_name_the_key_the_line_and_what_is_expected() -> None:
    from shipyard.core.project.loader import parse_config

    cases = {
        "signing:\n  require_signed: yes-please\n":
            "shipyard.yaml:2: signing.require_signed: should be true or false (got str 'yes-please')",
        "policy: {primary_metrc: x}\n":
            "shipyard.yaml:1: unknown key 'primary_metrc' in policy (did you mean 'primary_metric'?)",
        "scan:\n  timeout: 0\n": "shipyard.yaml:2: scan.timeout: should be a number greater than 0.0 (got 0)",
        "secrets:\n  vault:\n    adress: http://x\n":
            "shipyard.yaml:3: unknown key 'adress' in secrets.vault (did you mean 'address'?)",
        "policy:\n  margin: lots\n": "shipyard.yaml:2: policy.margin: should be a number (got str 'lots')",
    }
    for text, expected in cases.items():
        with pytest.raises(ConfigError) as caught:
            parse_config(text)
        assert str(caught.value) == expected

# --- hardening (issue 11's attack findings) ----------------------------------------------------------------


def test_metrics_out_of_range_are_null_with_a_note_and_cannot_compare(tmp_path: Path) -> None:
    from shipyard.core.policy import document as doc

    overflow = doc.metrics_part({"acc": 1.7e308}, 1, {"acc": -1.7e308}, "acc", True, 0.0)
    assert overflow["delta"] is None and overflow["worse_by"] is None and "not a finite number" in overflow["note"]
    for bad_cand, bad_cur in ((float("nan"), 0.9), (0.9, float("inf")), (float("-inf"), 0.9)):
        part = doc.metrics_part({"acc": bad_cand}, 1, {"acc": bad_cur}, "acc", True, 0.0)
        assert part["delta"] is None and isinstance(part["note"], str)
        doc.canonical({"metrics": part})  # JSON without NaN: no "Out of range float values" error
    doc.canonical({"metrics": overflow})
    fine = doc.metrics_part({"acc": 0.95}, 2, {"acc": 0.94}, "acc", True, 0.01)
    assert fine["note"] is None and fine["delta"] == pytest.approx(0.01)
    init_bundle(tmp_path)
    decided = opa.load_bundle(tmp_path / "policies").decide({**PASSING, "metrics": overflow})
    assert decided["allow"] is False
    assert any(r.startswith("cannot compare acc of iris@3 with iris@1's") for r in decided["reasons"]), decided


def test_policy_test_runs_indented_test_rules_and_skips_local_variables(tmp_path: Path) -> None:
    folder = write(tmp_path / "policies", {
        "p.rego": "package shipyard\n\nimport rego.v1\n\ndecision := {\"allow\": true, \"reasons\": []}\n",
        "extra_test.rego": "package extra_test\n\nimport rego.v1\n\n"
                           " test_indented_fails if {\n\tfalse\n}\n\n"
                           "\ttest_tabbed_passes if {\n\ttest_local := 1\n\ttest_local == 1\n}\n"})
    results = {name: ok for name, ok, _ in opa.load_bundle(folder).run_tests()}
    assert results == {"data.extra_test.test_indented_fails": False, "data.extra_test.test_tabbed_passes": True}
