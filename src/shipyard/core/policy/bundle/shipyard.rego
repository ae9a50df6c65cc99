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

# --- lineage complete: the producing run, its data digests, a committed, clean code version ------------------
violation contains {"check": "lineage", "reason": msg} if {
	not input.lineage.complete == true
	missing := concat(", ", lineage_missing)
	msg := concat("", [ref, " has incomplete lineage (missing: ", missing, "): register it from `shipyard run` with its data tracked (`shipyard data add`) and its code committed"])
}

default lineage_missing := ["the lineage record"]

lineage_missing := input.lineage.missing if is_array(input.lineage.missing)

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
	not input.scan.checked == true
	msg := concat("", ["no vulnerability scan reached an advisory source: run `shipyard scan ", ref, "` (or `shipyard scan ", ref, " --db DIR` offline)"])
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
	not input.signature.verified == true
	msg := concat("", [ref, " is not signed by a trusted key (", signature_reason, "): run `shipyard sign ", ref, "`"])
}

default signature_reason := "no signature recorded"

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

found := sort([v.reason | some v in violation])

reasons := found if production

reasons := [] if not production

notes := [] if production

notes := [concat("", ["(not required in ", input.env, ") ", r]) | some r in found] if not production

decision := {
	"allow": count(reasons) == 0,
	"reasons": reasons,
	"notes": notes,
	"production": production,
	"checks": [{"check": c, "passed": count([v | some v in violation; v.check == c]) == 0} | some c in checks],
}
