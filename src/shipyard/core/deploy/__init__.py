"""Delivery: the deploy configuration, Kubernetes/Argo manifests rendered as plain dicts, the analysis rules
that judge a canary, and the local rollout's plan (pure logic; adapters apply, push and serve)."""
