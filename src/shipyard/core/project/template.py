"""The annotated ``shipyard.yaml`` that ``shipyard init`` writes."""

TEMPLATE = """\
# shipyard.yaml: the project's pipeline, remotes and executor. Validated on every command;
# an unknown key or a wrong type is an error naming this file, the line and the key.
version: 1

# Parameters file that stages read dotted keys from (as in DVC).
params: params.yaml

# Where `shipyard data push/pull` send and fetch objects. A folder or S3-compatible storage.
# A folder remote must exist (`mkdir -p` it once): a mistyped path is an error, never a new folder.
# remotes:
#   origin:
#     url: s3://my-bucket/shipyard        # or /mnt/shared/shipyard, or file:///srv/shipyard
#     endpoint_url: http://127.0.0.1:9000 # for MinIO, Ceph, ...; omit for AWS
#     region: us-east-1
# default_remote: origin

# The team's one object store, when machines share a registry (SHIPYARD_DB_URL on one PostgreSQL):
# every machine writes and reads the objects there, through a bounded local cache (.shipyard/cache).
# Default: this project's .shipyard/objects. SHIPYARD_STORE, when set, wins.
# store: s3://my-bucket/shipyard-store    # or, as for a remote: {url: ..., endpoint_url: ..., region: ...}

# Where stages run: local subprocesses, or tasks on a Ray cluster.
executor:
  kind: local
  # kind: ray
  # address: 127.0.0.1:6379

# The pipeline. `shipyard run` runs what is out of date, in dependency order; a stage whose
# fingerprint (cmd + dependency digests + params + declared env) was seen before is restored
# from the cache instead of run. Uncomment and edit these lines (from "prepare:" down) to start.
stages:
  # prepare:
  #   cmd: python src/prepare.py
  #   deps: [data/raw, src/prepare.py]
  #   params: [prepare.test_size]          # keys in params.yaml; other.yaml:key for another file
  #   outs: [data/prepared]
  # train:
  #   cmd: python src/train.py
  #   deps: [data/prepared, src/train.py]
  #   params: [train.C]
  #   outs: [models/model.skops]
  #   metrics: [metrics/train.json]        # numbers recorded as the stage run's metrics
  #   env: [PYTHONHASHSEED]                # environment variables that are part of the fingerprint

# Drift and data quality (`shipyard serve` live, `shipyard monitor` from the logs, `shipyard alerts render`).
# A version is compared with its reference profile: log_model(..., reference=X_train). These are the defaults.
# monitoring:
#   psi: 0.2                  # PSI above which a numeric feature drifted
#   js: 0.1                   # Jensen-Shannon distance above which a categorical one drifted
#   quality: 0.05             # share of values missing (beyond the reference's), out of range or unseen
#   min_rows: 100             # fewer rows in a window: no drift verdict
#   window: 3600              # seconds of serve's rolling drift window
#   alerts:                   # thresholds of the rules `shipyard alerts render` writes
#     error_rate: 0.05
#     latency_p99: 0.5        # seconds
#     disagreement: 0.1       # canary or shadow answers that differ from the primary's
#     for: 5m
#     drift_for: 15m
#     quality_for: 10m
#     no_traffic_for: 15m
"""
