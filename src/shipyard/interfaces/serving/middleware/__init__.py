"""ASGI middleware of the model server, one per module: metrics (outermost), auth, limits."""
