# Unit tests of the default bundle: `shipyard policy test` runs every test_* rule here.
# (rego-cpp, the engine regopy embeds, takes neither `with input as {...}` for the whole input nor a rule as the
# value of `with`: each test binds the parts to local variables and replaces them one by one.)
package shipyard_test

import rego.v1

settings := {"production": ["production"]}

version := {"name": "iris", "version": 3}

lineage := {"complete": true, "run": "r1", "recorded": true, "data": {"data/iris.csv": "sha256:00"}, "code": "c0ffee", "dirty": false, "diff": null, "clean": true, "missing": []}

no_lineage := {"complete": false, "run": "r1", "recorded": true, "data": {}, "code": null, "dirty": false, "diff": null, "clean": false, "missing": ["data digests", "code commit"]}

dirty_with_diff := {"complete": true, "run": "r1", "recorded": true, "data": lineage.data, "code": "c0ffee", "dirty": true, "diff": "sha256:11", "clean": false, "missing": []}

dirty_without_diff := {"complete": false, "run": "r1", "recorded": true, "data": lineage.data, "code": "c0ffee", "dirty": true, "diff": null, "clean": false, "missing": ["the uncommitted diff"]}

image := {"ref": "r.example/iris@sha256:0000000000000000000000000000000000000000000000000000000000000000", "verified": true}

unverified_image := {"ref": image.ref, "verified": false}

verify := [{"passed": true, "image": image.ref}]

clean := {"checked": true, "findings": []}

not_checked := {"checked": false, "when": 1767225600, "findings": []}

never_scanned := {"checked": false, "when": null, "findings": []}

critical := {"id": "GHSA-x", "package": "numpy", "version": "1.0", "severity": "critical", "fixed": ["1.1"], "waived": false}

high_waived := {"id": "GHSA-y", "package": "numpy", "version": "1.0", "severity": "high", "fixed": [], "waived": true, "waiver": {"expires": "2099-01-01"}}

high_expired := {"id": "GHSA-z", "package": "numpy", "version": "1.0", "severity": "high", "fixed": [], "waived": true, "waiver": {"expires": "2000-01-01"}}

medium := {"id": "GHSA-m", "package": "numpy", "version": "1.0", "severity": "medium", "fixed": [], "waived": false}

signed := {"signed": true, "verified": true}

unsigned := {"signed": false, "verified": false, "reason": "it is not signed"}

same_metric := {"primary": "accuracy", "margin": 0.01, "candidate": 0.95, "current": 0.95, "current_version": 2, "worse_by": 0}

worse_metric := {"primary": "accuracy", "margin": 0.01, "candidate": 0.90, "current": 0.95, "current_version": 2, "worse_by": 0.05}

no_metric := {"primary": null, "margin": 0, "candidate": null, "current": null, "current_version": null, "worse_by": null}

# everything in order
test_everything_in_order_is_allowed_in_production if {
	env_ := "production"
	action_ := "promote"
	settings_ := settings
	version_ := version
	lineage_ := lineage
	image_ := image
	verify_ := verify
	scan_ := clean
	signature_ := signed
	metrics_ := same_metric
	today_ := "2026-01-01"
	d := data.shipyard.decision with input.env as env_ with input.action as action_ with input.settings as settings_ with input.version as version_ with input.lineage as lineage_ with input.image as image_ with input.verify as verify_ with input.scan as scan_ with input.signature as signature_ with input.metrics as metrics_ with input.today as today_
	d.allow == true
	d.reasons == []
	d.notes == []
}

# lineage
test_incomplete_lineage_is_denied_in_production if {
	env_ := "production"
	action_ := "promote"
	settings_ := settings
	version_ := version
	lineage_ := no_lineage
	image_ := image
	verify_ := verify
	scan_ := clean
	signature_ := signed
	metrics_ := same_metric
	today_ := "2026-01-01"
	d := data.shipyard.decision with input.env as env_ with input.action as action_ with input.settings as settings_ with input.version as version_ with input.lineage as lineage_ with input.image as image_ with input.verify as verify_ with input.scan as scan_ with input.signature as signature_ with input.metrics as metrics_ with input.today as today_
	d.allow == false
	count(d.reasons) == 2
	contains(d.reasons[0], "incomplete lineage: its run r1 recorded no data digests: track its data with `shipyard data add PATH`")
	contains(d.reasons[1], "recorded no git commit: commit the project with git, then `shipyard run` again")
}

test_incomplete_lineage_is_a_note_in_staging if {
	env_ := "staging"
	action_ := "promote"
	settings_ := settings
	version_ := version
	lineage_ := no_lineage
	image_ := image
	verify_ := verify
	scan_ := clean
	signature_ := signed
	metrics_ := same_metric
	today_ := "2026-01-01"
	d := data.shipyard.decision with input.env as env_ with input.action as action_ with input.settings as settings_ with input.version as version_ with input.lineage as lineage_ with input.image as image_ with input.verify as verify_ with input.scan as scan_ with input.signature as signature_ with input.metrics as metrics_ with input.today as today_
	d.allow == true
	d.reasons == []
	count(d.notes) == 2
	startswith(d.notes[0], "(not required in staging)")
}

test_a_dirty_tree_with_its_diff_stored_is_complete_lineage if {
	env_ := "production"
	action_ := "promote"
	settings_ := settings
	version_ := version
	lineage_ := dirty_with_diff
	image_ := image
	verify_ := verify
	scan_ := clean
	signature_ := signed
	metrics_ := same_metric
	today_ := "2026-01-01"
	d := data.shipyard.decision with input.env as env_ with input.action as action_ with input.settings as settings_ with input.version as version_ with input.lineage as lineage_ with input.image as image_ with input.verify as verify_ with input.scan as scan_ with input.signature as signature_ with input.metrics as metrics_ with input.today as today_
	d.allow == true
	d.reasons == []
}

test_a_dirty_tree_without_its_diff_is_incomplete_lineage if {
	env_ := "production"
	action_ := "promote"
	settings_ := settings
	version_ := version
	lineage_ := dirty_without_diff
	image_ := image
	verify_ := verify
	scan_ := clean
	signature_ := signed
	metrics_ := same_metric
	today_ := "2026-01-01"
	d := data.shipyard.decision with input.env as env_ with input.action as action_ with input.settings as settings_ with input.version as version_ with input.lineage as lineage_ with input.image as image_ with input.verify as verify_ with input.scan as scan_ with input.signature as signature_ with input.metrics as metrics_ with input.today as today_
	d.reasons == ["iris@3 has incomplete lineage: its run r1 had uncommitted changes and did not store their diff: commit your changes, then `shipyard run` again (a new version)"]
}

test_no_producing_run_is_incomplete_lineage if {
	env_ := "production"
	action_ := "promote"
	settings_ := settings
	version_ := version
	lineage_ := {"run": null, "recorded": false}
	image_ := image
	verify_ := verify
	scan_ := clean
	signature_ := signed
	metrics_ := same_metric
	today_ := "2026-01-01"
	d := data.shipyard.decision with input.env as env_ with input.action as action_ with input.settings as settings_ with input.version as version_ with input.lineage as lineage_ with input.image as image_ with input.verify as verify_ with input.scan as scan_ with input.signature as signature_ with input.metrics as metrics_ with input.today as today_
	count(d.reasons) == 1
	contains(d.reasons[0], "no producing run is recorded")
}

test_a_version_never_scanned_says_so if {
	env_ := "production"
	action_ := "promote"
	settings_ := settings
	version_ := version
	lineage_ := lineage
	image_ := image
	verify_ := verify
	scan_ := never_scanned
	signature_ := signed
	metrics_ := same_metric
	today_ := "2026-01-01"
	d := data.shipyard.decision with input.env as env_ with input.action as action_ with input.settings as settings_ with input.version as version_ with input.lineage as lineage_ with input.image as image_ with input.verify as verify_ with input.scan as scan_ with input.signature as signature_ with input.metrics as metrics_ with input.today as today_
	d.reasons == ["iris@3 is not scanned yet: run `shipyard scan iris@3` (offline: `shipyard scan iris@3 --db DIR`)"]
}

test_without_an_environment_the_findings_are_notes_that_say_so if {
	env_ := null
	action_ := "promote"
	settings_ := settings
	version_ := version
	lineage_ := dirty_without_diff
	image_ := image
	verify_ := verify
	scan_ := clean
	signature_ := signed
	metrics_ := same_metric
	today_ := "2026-01-01"
	d := data.shipyard.decision with input.env as env_ with input.action as action_ with input.settings as settings_ with input.version as version_ with input.lineage as lineage_ with input.image as image_ with input.verify as verify_ with input.scan as scan_ with input.signature as signature_ with input.metrics as metrics_ with input.today as today_
	d.allow == true
	count(d.notes) == 1
	startswith(d.notes[0], "(not required without an environment) iris@3 has incomplete lineage")
}

# verified in the image being deployed
test_an_unverified_image_is_denied_for_promote if {
	env_ := "production"
	action_ := "promote"
	settings_ := settings
	version_ := version
	lineage_ := lineage
	image_ := unverified_image
	verify_ := verify
	scan_ := clean
	signature_ := signed
	metrics_ := same_metric
	today_ := "2026-01-01"
	d := data.shipyard.decision with input.env as env_ with input.action as action_ with input.settings as settings_ with input.version as version_ with input.lineage as lineage_ with input.image as image_ with input.verify as verify_ with input.scan as scan_ with input.signature as signature_ with input.metrics as metrics_ with input.today as today_
	d.allow == false
	contains(d.reasons[0], "shipyard verify iris@3 --image")
}

test_no_image_is_denied_for_deploy if {
	env_ := "production"
	action_ := "deploy"
	settings_ := settings
	version_ := version
	lineage_ := lineage
	image_ := {"ref": null, "verified": false}
	verify_ := verify
	scan_ := clean
	signature_ := signed
	metrics_ := same_metric
	today_ := "2026-01-01"
	d := data.shipyard.decision with input.env as env_ with input.action as action_ with input.settings as settings_ with input.version as version_ with input.lineage as lineage_ with input.image as image_ with input.verify as verify_ with input.scan as scan_ with input.signature as signature_ with input.metrics as metrics_ with input.today as today_
	d.allow == false
	contains(d.reasons[0], "no pinned image")
}

test_an_alias_needs_some_passing_verify if {
	env_ := "production"
	action_ := "alias"
	settings_ := settings
	version_ := version
	lineage_ := lineage
	image_ := {"ref": null}
	verify_ := [{"passed": false}]
	scan_ := clean
	signature_ := signed
	metrics_ := same_metric
	today_ := "2026-01-01"
	d := data.shipyard.decision with input.env as env_ with input.action as action_ with input.settings as settings_ with input.version as version_ with input.lineage as lineage_ with input.image as image_ with input.verify as verify_ with input.scan as scan_ with input.signature as signature_ with input.metrics as metrics_ with input.today as today_
	d.allow == false
	contains(d.reasons[0], "no passing verify")
}

test_an_alias_with_a_passing_verify_is_allowed if {
	env_ := "production"
	action_ := "alias"
	settings_ := settings
	version_ := version
	lineage_ := lineage
	image_ := {"ref": null}
	verify_ := verify
	scan_ := clean
	signature_ := signed
	metrics_ := same_metric
	today_ := "2026-01-01"
	d := data.shipyard.decision with input.env as env_ with input.action as action_ with input.settings as settings_ with input.version as version_ with input.lineage as lineage_ with input.image as image_ with input.verify as verify_ with input.scan as scan_ with input.signature as signature_ with input.metrics as metrics_ with input.today as today_
	d.allow == true
}

# vulnerabilities
test_a_scan_that_reached_nothing_is_not_clean if {
	env_ := "production"
	action_ := "promote"
	settings_ := settings
	version_ := version
	lineage_ := lineage
	image_ := image
	verify_ := verify
	scan_ := not_checked
	signature_ := signed
	metrics_ := same_metric
	today_ := "2026-01-01"
	d := data.shipyard.decision with input.env as env_ with input.action as action_ with input.settings as settings_ with input.version as version_ with input.lineage as lineage_ with input.image as image_ with input.verify as verify_ with input.scan as scan_ with input.signature as signature_ with input.metrics as metrics_ with input.today as today_
	d.allow == false
	startswith(d.reasons[0], "the newest scan of iris@3 reached no advisory source (not checked, which is not clean): run `shipyard scan iris@3`")
}

test_a_critical_finding_is_denied if {
	env_ := "production"
	action_ := "promote"
	settings_ := settings
	version_ := version
	lineage_ := lineage
	image_ := image
	verify_ := verify
	scan_ := {"checked": true, "findings": [critical, medium]}
	signature_ := signed
	metrics_ := same_metric
	today_ := "2026-01-01"
	d := data.shipyard.decision with input.env as env_ with input.action as action_ with input.settings as settings_ with input.version as version_ with input.lineage as lineage_ with input.image as image_ with input.verify as verify_ with input.scan as scan_ with input.signature as signature_ with input.metrics as metrics_ with input.today as today_
	d.allow == false
	count(d.reasons) == 1
	contains(d.reasons[0], "critical vulnerability GHSA-x in numpy 1.0")
}

test_a_waived_high_finding_is_allowed if {
	env_ := "production"
	action_ := "promote"
	settings_ := settings
	version_ := version
	lineage_ := lineage
	image_ := image
	verify_ := verify
	scan_ := {"checked": true, "findings": [high_waived]}
	signature_ := signed
	metrics_ := same_metric
	today_ := "2026-01-01"
	d := data.shipyard.decision with input.env as env_ with input.action as action_ with input.settings as settings_ with input.version as version_ with input.lineage as lineage_ with input.image as image_ with input.verify as verify_ with input.scan as scan_ with input.signature as signature_ with input.metrics as metrics_ with input.today as today_
	d.allow == true
}

test_an_expired_waiver_does_not_count if {
	env_ := "production"
	action_ := "promote"
	settings_ := settings
	version_ := version
	lineage_ := lineage
	image_ := image
	verify_ := verify
	scan_ := {"checked": true, "findings": [high_expired]}
	signature_ := signed
	metrics_ := same_metric
	today_ := "2026-01-01"
	d := data.shipyard.decision with input.env as env_ with input.action as action_ with input.settings as settings_ with input.version as version_ with input.lineage as lineage_ with input.image as image_ with input.verify as verify_ with input.scan as scan_ with input.signature as signature_ with input.metrics as metrics_ with input.today as today_
	d.allow == false
	contains(d.reasons[0], "GHSA-z")
}

# signed
test_an_unsigned_version_is_denied if {
	env_ := "production"
	action_ := "promote"
	settings_ := settings
	version_ := version
	lineage_ := lineage
	image_ := image
	verify_ := verify
	scan_ := clean
	signature_ := unsigned
	metrics_ := same_metric
	today_ := "2026-01-01"
	d := data.shipyard.decision with input.env as env_ with input.action as action_ with input.settings as settings_ with input.version as version_ with input.lineage as lineage_ with input.image as image_ with input.verify as verify_ with input.scan as scan_ with input.signature as signature_ with input.metrics as metrics_ with input.today as today_
	d.allow == false
	d.reasons == ["iris@3 is not signed: run `shipyard sign iris@3`"]
}

test_a_signature_that_does_not_verify_is_denied if {
	env_ := "production"
	action_ := "promote"
	settings_ := settings
	version_ := version
	lineage_ := lineage
	image_ := image
	verify_ := verify
	scan_ := clean
	signature_ := {"signed": true, "verified": false, "reason": "files changed"}
	metrics_ := same_metric
	today_ := "2026-01-01"
	d := data.shipyard.decision with input.env as env_ with input.action as action_ with input.settings as settings_ with input.version as version_ with input.lineage as lineage_ with input.image as image_ with input.verify as verify_ with input.scan as scan_ with input.signature as signature_ with input.metrics as metrics_ with input.today as today_
	d.allow == false
	d.reasons == ["iris@3's signature does not verify with a trusted key: files changed"]
}

# the primary metric
test_a_worse_metric_past_the_margin_is_denied if {
	env_ := "production"
	action_ := "promote"
	settings_ := settings
	version_ := version
	lineage_ := lineage
	image_ := image
	verify_ := verify
	scan_ := clean
	signature_ := signed
	metrics_ := worse_metric
	today_ := "2026-01-01"
	d := data.shipyard.decision with input.env as env_ with input.action as action_ with input.settings as settings_ with input.version as version_ with input.lineage as lineage_ with input.image as image_ with input.verify as verify_ with input.scan as scan_ with input.signature as signature_ with input.metrics as metrics_ with input.today as today_
	d.allow == false
	contains(d.reasons[0], "past the margin")
}

test_a_worse_metric_within_the_margin_is_allowed if {
	env_ := "production"
	action_ := "promote"
	settings_ := settings
	version_ := version
	lineage_ := lineage
	image_ := image
	verify_ := verify
	scan_ := clean
	signature_ := signed
	metrics_ := {"primary": "accuracy", "margin": 0.1, "candidate": 0.9, "current": 0.95, "current_version": 2, "worse_by": 0.05}
	today_ := "2026-01-01"
	d := data.shipyard.decision with input.env as env_ with input.action as action_ with input.settings as settings_ with input.version as version_ with input.lineage as lineage_ with input.image as image_ with input.verify as verify_ with input.scan as scan_ with input.signature as signature_ with input.metrics as metrics_ with input.today as today_
	d.allow == true
}

test_no_primary_metric_configured_is_allowed if {
	env_ := "production"
	action_ := "promote"
	settings_ := settings
	version_ := version
	lineage_ := lineage
	image_ := image
	verify_ := verify
	scan_ := clean
	signature_ := signed
	metrics_ := no_metric
	today_ := "2026-01-01"
	d := data.shipyard.decision with input.env as env_ with input.action as action_ with input.settings as settings_ with input.version as version_ with input.lineage as lineage_ with input.image as image_ with input.verify as verify_ with input.scan as scan_ with input.signature as signature_ with input.metrics as metrics_ with input.today as today_
	d.allow == true
	{c.check | some c in d.checks; c.skipped == true} == {"metric"}
	startswith(d.notes[0], "metric not compared: no policy.primary_metric")
}

test_a_missing_candidate_metric_is_denied if {
	env_ := "production"
	action_ := "promote"
	settings_ := settings
	version_ := version
	lineage_ := lineage
	image_ := image
	verify_ := verify
	scan_ := clean
	signature_ := signed
	metrics_ := {"primary": "accuracy", "margin": 0, "candidate": null, "current": 0.9, "current_version": 2, "worse_by": null}
	today_ := "2026-01-01"
	d := data.shipyard.decision with input.env as env_ with input.action as action_ with input.settings as settings_ with input.version as version_ with input.lineage as lineage_ with input.image as image_ with input.verify as verify_ with input.scan as scan_ with input.signature as signature_ with input.metrics as metrics_ with input.today as today_
	d.allow == false
	contains(d.reasons[0], "has no accuracy metric")
}

# the answer
test_the_checks_name_the_failed_one if {
	env_ := "production"
	action_ := "promote"
	settings_ := settings
	version_ := version
	lineage_ := lineage
	image_ := image
	verify_ := verify
	scan_ := clean
	signature_ := unsigned
	metrics_ := same_metric
	today_ := "2026-01-01"
	d := data.shipyard.decision with input.env as env_ with input.action as action_ with input.settings as settings_ with input.version as version_ with input.lineage as lineage_ with input.image as image_ with input.verify as verify_ with input.scan as scan_ with input.signature as signature_ with input.metrics as metrics_ with input.today as today_
	{c.check | some c in d.checks; c.passed == false} == {"signed"}
}

test_every_failure_is_a_reason if {
	env_ := "production"
	action_ := "promote"
	settings_ := settings
	version_ := version
	lineage_ := no_lineage
	image_ := image
	verify_ := verify
	scan_ := not_checked
	signature_ := unsigned
	metrics_ := same_metric
	today_ := "2026-01-01"
	d := data.shipyard.decision with input.env as env_ with input.action as action_ with input.settings as settings_ with input.version as version_ with input.lineage as lineage_ with input.image as image_ with input.verify as verify_ with input.scan as scan_ with input.signature as signature_ with input.metrics as metrics_ with input.today as today_
	count(d.reasons) == 4 # two for lineage (no data, no commit), not scanned, not signed
}
