# Shipyard's default policy bundle. Every gate (promote, deploy, alias set on a protected alias, serve when
# policy.require_on_serve) asks data.shipyard.decision with the version's record as input; `shipyard policy eval
# MODEL@V --action promote --env production` shows the input and the answer. Edit freely, keep
# `shipyard policy test` green. In production (policy.production) every check must pass; elsewhere the same
# findings come back as notes and the action is allowed.
package shipyard

import rego.v1

default production := false

production if input.env in input.settings.production

# strings are joined with concat, numbers shown with sprintf("%v"): rego-cpp's sprintf quotes a string that
# concat made
ref := concat("", [input.version.name, "@", sprintf("%v", [input.version.version])])

image_action if input.action in {"promote", "deploy"}

# --- lineage complete: the producing run, its data digests, its code commit, and the diff of a dirty tree ------
# A run from a dirty tree stores its uncommitted diff, so commit + diff is as reproducible as a clean commit.
violation contains {"check": "lineage", "reason": msg} if {
	not is_string(input.lineage.run)
	msg := concat("", [ref, " has incomplete lineage: no producing run is recorded (it was registered outside a run): register it from a pipeline stage with `shipyard run`"])
}

violation contains {"check": "lineage", "reason": msg} if {
	is_string(input.lineage.run)
	not input.lineage.recorded == true
	msg := concat("", [ref, " has incomplete lineage: its run ", input.lineage.run, " is not in this registry: register it from a `shipyard run` recorded here"])
}

violation contains {"check": "lineage", "reason": msg} if {
	input.lineage.recorded == true
	count(object.get(input.lineage, "data", {})) == 0
	msg := concat("", [ref, " has incomplete lineage: its run ", input.lineage.run, " recorded no data digests: track its data with `shipyard data add PATH`, list it in the stage's deps, then `shipyard run` again (a new version)"])
}

violation contains {"check": "lineage", "reason": msg} if {
	input.lineage.recorded == true
	not is_string(input.lineage.code)
	msg := concat("", [ref, " has incomplete lineage: its run ", input.lineage.run, " recorded no git commit: commit the project with git, then `shipyard run` again (a new version)"])
}

violation contains {"check": "lineage", "reason": msg} if {
	input.lineage.recorded == true
	is_string(input.lineage.code)
	input.lineage.dirty == true
	not is_string(input.lineage.diff)
	msg := concat("", [ref, " has incomplete lineage: its run ", input.lineage.run, " had uncommitted changes and did not store their diff: commit your changes, then `shipyard run` again (a new version)"])
}

# A team that wants every production version trained from a clean tree (changes committed before the run)
# adds this rule:
#
# violation contains {"check": "lineage", "reason": msg} if {
# 	input.lineage.recorded == true
# 	input.lineage.clean == false
# 	msg := concat("", [ref, " was trained from uncommitted changes (its diff is stored): commit them, then `shipyard run` again (a new version)"])
# }

# --- verified: in the image being deployed (promote, deploy), else in any verify ----------------------------
violation contains {"check": "verified", "reason": msg} if {
	image_action
	not is_string(input.image.ref)
	msg := concat("", [ref, " has no pinned image to check: run `shipyard build ", ref, " --push REGISTRY/REPO`"])
}

violation contains {"check": "verified", "reason": msg} if {
	image_action
	is_string(input.image.ref)
	not input.image.verified == true
	msg := concat("", [ref, " has no passing verify in the image ", input.image.ref, ": run `shipyard verify ", ref, " --image ", input.image.ref, "`"])
}

violation contains {"check": "verified", "reason": msg} if {
	not image_action
	not any_passing_verify
	msg := concat("", [ref, " has no passing verify: run `shipyard verify ", ref, "`"])
}

any_passing_verify if {
	some v in input.verify
	v.passed == true
}

# --- vulnerabilities: none critical or high without an unexpired waiver; "not checked" is not "clean" --------
violation contains {"check": "vulnerabilities", "reason": msg} if {
	not is_number(input.scan.when)
	not input.scan.checked == true
	msg := concat("", [ref, " is not scanned yet: run `shipyard scan ", ref, "` (offline: `shipyard scan ", ref, " --db DIR`)"])
}

violation contains {"check": "vulnerabilities", "reason": msg} if {
	is_number(input.scan.when)
	not input.scan.checked == true
	msg := concat("", ["the newest scan of ", ref, " reached no advisory source (not checked, which is not clean): run `shipyard scan ", ref, "` where the OSV API answers, or `shipyard scan ", ref, " --db DIR` offline"])
}

violation contains {"check": "vulnerabilities", "reason": msg} if {
	input.scan.checked == true
	some f in input.scan.findings
	f.severity in {"critical", "high"}
	not waived(f)
	msg := concat("", [f.severity, " vulnerability ", f.id, " in ", f.package, " ", f.version, ": upgrade it (fixed in ", fixed(f), "), or record a waiver with `shipyard waive ", ref, " ", f.id, " --reason ... --expires YYYY-MM-DD`"])
}

waived(f) if {
	f.waived == true
	f.waiver.expires >= input.today
}

fixed(f) := concat(", ", f.fixed) if count(f.fixed) > 0

fixed(f) := "no release yet" if count(f.fixed) == 0

# --- signed: a signature that verifies with a trusted key -----------------------------------------------------
violation contains {"check": "signed", "reason": msg} if {
	not input.signature.signed == true
	msg := concat("", [ref, " is not signed: run `shipyard sign ", ref, "`"])
}

violation contains {"check": "signed", "reason": msg} if {
	input.signature.signed == true
	not input.signature.verified == true
	msg := concat("", [ref, "'s signature does not verify with a trusted key: ", signature_reason])
}

default signature_reason := "no reason given (`shipyard sign --verify REF` says more)"

signature_reason := input.signature.reason if {
	is_string(input.signature.reason)
	input.signature.reason != ""
}

# --- the primary metric: not worse than the environment's version by more than the margin -------------------
violation contains {"check": "metric", "reason": msg} if {
	m := input.metrics
	is_string(m.primary)
	m.current != null
	m.candidate == null
	not is_string(m.note)
	msg := concat("", [ref, " has no ", m.primary, " metric to compare with ", input.version.name, "@", sprintf("%v", [m.current_version]), "'s ", sprintf("%v", [m.current]), ": log it when the version is trained"])
}

violation contains {"check": "metric", "reason": msg} if {
	m := input.metrics
	m.worse_by != null
	m.worse_by > m.margin
	msg := concat("", [m.primary, " of ", ref, " is ", sprintf("%v", [m.candidate]), ", worse than ", input.version.name, "@", sprintf("%v", [m.current_version]), "'s ", sprintf("%v", [m.current]), " by ", sprintf("%v", [m.worse_by]), ", past the margin ", sprintf("%v", [m.margin]), " (policy.margin): train a better version"])
}

violation contains {"check": "metric", "reason": msg} if {
	m := input.metrics
	is_string(m.primary)
	is_string(m.note)
	msg := concat("", ["cannot compare ", m.primary, " of ", ref, " with ", input.version.name, "@", sprintf("%v", [m.current_version]), "'s: ", m.note, ": log a finite value"])
}

# --- the answer -----------------------------------------------------------------------------------------------
checks := ["lineage", "verified", "vulnerabilities", "signed", "metric"]

# a check that does not apply: shown as not configured, never as a pass
skipped contains "metric" if not is_string(input.metrics.primary)

skip_notes := ["metric not compared: no policy.primary_metric in shipyard.yaml (set it to compare with the version the environment runs)" | "metric" in skipped]

found := sort([v.reason | some v in violation])

reasons := found if production

reasons := [] if not production

where := concat("", ["in ", input.env]) if {
	is_string(input.env)
} else := "without an environment"

finding_notes := [] if production

finding_notes := [concat("", ["(not required ", where, ") ", r]) | some r in found] if not production

notes := array.concat(finding_notes, skip_notes)

check(c) := {"check": c, "passed": count([v | some v in violation; v.check == c]) == 0, "skipped": c in skipped}

decision := {
	"allow": count(reasons) == 0,
	"reasons": reasons,
	"notes": notes,
	"production": production,
	"checks": [check(c) | some c in checks],
}
