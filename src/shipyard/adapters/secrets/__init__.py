"""Secret stores, one per reference scheme: ``env:`` (local.EnvSecrets), ``file:`` (local.FileSecrets) and
``vault:`` (vault.VaultSecrets, KV v2 through hvac, imported on first use)."""
