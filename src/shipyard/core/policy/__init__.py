"""Policy as code: the input document a gate builds, the decision read from the bundle, its audit record."""
