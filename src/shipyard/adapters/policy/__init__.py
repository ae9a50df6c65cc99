"""Policy engines: opa (regopy, OPA Rego in-process)."""
