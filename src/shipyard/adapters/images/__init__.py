"""Container images of model versions: build context, engine, the image's one-version registry."""
