"""Content addressing: digests, manifests (a folder is one digest), verification and gc."""
