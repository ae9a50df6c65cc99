"""The team-store workload through Shipyard (run in the project's venv by bench/team_store.py).

    team_shipyard.py register   machine A: register BENCH_REPEATS versions of the big model to the S3 store,
                                each against a raw obstore upload of the same bytes
    team_shipyard.py load       machine B (empty cache): load one version cold, then warm; raw downloads of its
                                big object with obstore; the deserialization alone
    team_shipyard.py local      machine C: the same version from a local store (SHIPYARD_STORE a folder)

The S3 store, database and home come from the environment (SHIPYARD_*, AWS_*); BENCH_* give the rest.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
import obstore
from obstore.store import S3Store
from team_common import big_model, emit, env_float, profiled, timed

import shipyard
from shipyard.adapters.flavors.sklearn import _skops
from shipyard.core.artifacts.digest import object_key
from shipyard.core.artifacts.tree import load_manifest
from shipyard.interfaces.api.fluent import _svc, default_client

MIB = env_float("BENCH_MIB", 100)
REPEATS = int(env_float("BENCH_REPEATS", 5))
PROFILE = os.environ.get("BENCH_PROFILE") == "1"


def raw_store() -> S3Store:
    """The same client Shipyard's S3 store uses (obstore), on the same bucket and prefix."""
    bucket, _, prefix = os.environ["SHIPYARD_STORE"].removeprefix("s3://").partition("/")
    return S3Store(bucket, prefix=prefix or None, endpoint=os.environ["AWS_ENDPOINT_URL"],
                   virtual_hosted_style_request=False, client_options={"allow_http": True}, region="us-east-1")


def register() -> None:
    raw = raw_store()
    tiny, _ = big_model(10_000, 0.01)
    with shipyard.start_run(name="warm-up"):  # imports, environment capture, database and S3 connections
        shipyard.log_model(tiny, "warm-up")
    obstore.put(raw, "raw/warm-up", b"x")
    r: dict[str, Any] = {"register_s": [], "raw_upload_s": [], "serialize_s": []}
    version = 0
    with tempfile.TemporaryDirectory(prefix="bench-raw-up-") as tmp:
        for i in range(REPEATS + (1 if PROFILE else 0)):
            model, _ = big_model(i, MIB)
            data: list[bytes] = []
            r["serialize_s"].append(timed(lambda: data.append(_skops().dumps(model))))  # noqa: B023
            path = Path(tmp) / f"model-{i}.skops"
            path.write_bytes(data[0])
            r["bytes"] = len(data[0])
            del data[:]

            def ship(i: int = i, model: Any = model) -> None:
                nonlocal version
                with shipyard.start_run(name=f"register-{i}"):
                    version = shipyard.log_model(model, "big").version

            def upload(i: int = i, path: Path = path) -> None:
                obstore.put(raw, f"raw/upload-{i}", path)

            if i == REPEATS:  # the profiled extra version, not counted
                profiled("register (log_model to the S3 store)", ship)
                continue
            if i % 2:  # alternate which goes first, so neither always meets a busier moto
                r["raw_upload_s"].append(timed(upload))
                r["register_s"].append(timed(ship))
            else:
                r["register_s"].append(timed(ship))
                r["raw_upload_s"].append(timed(upload))
            path.unlink()
            print(f"  register #{i}: Shipyard {r['register_s'][-1]:.3f} s, raw upload {r['raw_upload_s'][-1]:.3f} s, "
                  f"skops serialization alone {r['serialize_s'][-1]:.3f} s", flush=True)
    r["version"] = version
    emit(r)


def load() -> None:
    version = int(os.environ["BENCH_VERSION"])
    ref = f"big@{version}"
    svc = _svc()
    mv = default_client().get_model_version("big", version)
    big = max(load_manifest(svc.store, mv.manifest_digest).entries, key=lambda e: e.size)  # the small manifest
    key = object_key(big.digest)
    raw = raw_store()
    obstore.head(raw, key)  # both clients connected before anything is timed
    svc.store.upstream.stats([big.digest])  # type: ignore[attr-defined]
    _skops()
    import sklearn.linear_model  # noqa: F401

    r: dict[str, Any] = {"bytes": big.size}
    r["cold_s"] = profiled("cold load (empty cache)", lambda: shipyard.load_model(ref)) if PROFILE \
        else timed(lambda: shipyard.load_model(ref))
    r["warm_s"] = statistics.median(timed(lambda: shipyard.load_model(ref)) for _ in range(3))
    if PROFILE:
        profiled("warm load (cached)", lambda: shipyard.load_model(ref))
    with tempfile.TemporaryDirectory(prefix="bench-raw-down-") as tmp:
        def to_file() -> None:
            result = obstore.get(raw, key)
            with open(os.path.join(tmp, "model"), "wb") as f:
                for chunk in result.stream(min_chunk_size=8 * 1024 * 1024):
                    f.write(chunk)

        r["raw_download_file_s"] = statistics.median(timed(to_file) for _ in range(3))
    r["raw_download_memory_s"] = statistics.median(timed(lambda: obstore.get(raw, key).bytes()) for _ in range(3))
    cached = svc.store.local_path(big.digest)
    skops = _skops()
    trusted = skops.get_untrusted_types(file=cached)
    r["deserialize_s"] = statistics.median(timed(lambda: skops.load(cached, trusted=trusted)) for _ in range(3))
    r["cache_folder"] = str(svc.settings.store_path)
    emit(r)


def local() -> None:
    ref = f"big@{os.environ['BENCH_VERSION']}"
    default_client().get_model_version("big", int(os.environ["BENCH_VERSION"]))
    _skops()
    import sklearn.linear_model  # noqa: F401

    shipyard.load_model(ref)  # the same state as machine B's warm loads: the files were just read
    r = {"local_s": statistics.median(timed(lambda: shipyard.load_model(ref)) for _ in range(3))}
    if PROFILE:
        profiled("load from a local store", lambda: shipyard.load_model(ref))
    emit(r)


if __name__ == "__main__":
    {"register": register, "load": load, "local": local}[sys.argv[1]]()
