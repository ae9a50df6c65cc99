"""A model version's container image, as text: the base image, the Dockerfile, its labels (no I/O here).

The build context (``adapters.images.context``) holds, in the order its layers stack so that a new
version of the same model rebuilds only the last one: ``deps/`` (the base image and the locked
dependencies in ``deps/site``: an image of its own, built once per lock and base and shared), ``app/``
(Shipyard itself and the entrypoint), then ``model/`` (the version's files by digest in a one-version
registry). The dependencies are a separate image so that a rebuild sends the engine only Shipyard and
the model, not hundreds of megabytes it would re-hash only to find them cached. Labels and the model's
reference come after the copies: they change with every build and would otherwise invalidate the cache.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

APP_DIR = "/opt/shipyard/app"
SITE_DIR = "/opt/shipyard/site"
SERVE_DIR = "/srv/shipyard"  # the image's project folder: its .shipyard holds the one-version registry
IMAGE_HOME = f"{SERVE_DIR}/.shipyard"
IMAGE_ACTOR = "shipyard-image"  # who the server in the image acts as (its trust decision is imported as this)
USER_ID = 10001
DEFAULT_PORT = 8080
PORT_VARIABLE = "PORT"
READY_PATH = "/v2/health/ready"
LABEL_PREFIX = "io.shipyard"
CUDA_PATCH = {"11.8": "11.8.0", "12.1": "12.1.1", "12.4": "12.4.1", "12.6": "12.6.3", "12.8": "12.8.1",
              "12.9": "12.9.1", "13.0": "13.0.1"}  # nvidia/cuda tags carry the patch release
_PYTHON_RE = re.compile(r"3\.\d{1,2}")
_IMAGE_RE = re.compile(r"[a-z0-9][a-z0-9._/:@-]{0,254}", re.IGNORECASE)
_CUDA_RE = re.compile(r"\d{1,3}\.\d{1,3}(\.\d{1,4})?")
_NOT_PRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _one_line(text: str, limit: int = 80) -> str:
    """Text from an untrusted record made safe for a Dockerfile comment: one line, no control characters."""
    return _NOT_PRINTABLE.sub(" ", text)[:limit]


@dataclass(frozen=True, slots=True)
class Base:
    """The image to start from, and why it was chosen."""

    image: str
    reason: str
    gpu: bool = False
    install_python: bool = False  # a CUDA runtime image has no Python: the Dockerfile installs the distro's
    notes: tuple[str, ...] = ()


def check_image_name(name: str, what: str = "--base") -> str:
    """An image reference as a user types it (``python:3.11-slim``, ``reg:5000/app@sha256:...``), one line."""
    if not _IMAGE_RE.fullmatch(name):
        raise ValueError(f"{what} {name[:80]!r} is not an image reference (like python:3.11-slim or "
                         "registry.example.com/team/base:1)")
    return name


def python_minor(env: Mapping[str, Any]) -> str:
    """``3.11`` from the record's ``python.version`` (``3.11.7``); ValueError when the record has none."""
    version = str((env.get("python") or {}).get("version") or "")
    match = _PYTHON_RE.match(version)
    if not match:
        raise ValueError(f"the environment record names no Python version ({version[:20]!r})")
    return match.group(0)


def gpu_build(env: Mapping[str, Any]) -> dict[str, Any] | None:
    """The framework build that needs CUDA (torch, tensorflow), or None for a CPU model."""
    for name in ("torch", "tensorflow"):
        fw = (env.get("frameworks") or {}).get(name)
        if isinstance(fw, Mapping) and fw.get("cuda"):
            return {"framework": name, **fw}
    return None


def choose_base(env: Mapping[str, Any], override: str | None = None) -> Base:
    """``--base`` when given; otherwise from the fingerprint: slim Python for a CPU model, the CUDA
    runtime image (with cuDNN) matching the framework's build for a GPU model."""
    py = python_minor(env)
    if override:
        return Base(check_image_name(override), "--base")
    build = gpu_build(env)
    if build is None:
        return Base(f"python:{py}-slim", f"CPU model, Python {py}")
    cuda = str(build["cuda"])
    if not _CUDA_RE.fullmatch(cuda):  # the record is untrusted: this text goes into FROM
        raise ValueError(f"the environment record's CUDA version {cuda[:40]!r} is not a version like 12.1; "
                         "pass --base the image to build on")
    minor = ".".join(cuda.split(".")[:2])
    full = CUDA_PATCH.get(minor, f"{minor}.0")
    cudnn = _one_line(str(build.get("cudnn") or ""))
    cudnn_tag = "cudnn8" if cudnn.startswith("8.") else "cudnn"  # since cuDNN 9 the tags name no major
    ubuntu = "22.04" if py == "3.10" else "24.04"
    notes: tuple[str, ...] = ()
    if py not in ("3.10", "3.12"):
        notes = (f"the model was trained on Python {py}, and CUDA images ship Ubuntu's Python "
                 f"({'3.12' if ubuntu == '24.04' else '3.10'}): pass --base an image with Python {py}",)
    tag = f" ({build['framework']} {_one_line(str(build.get('version')))})" if build.get("version") else ""
    return Base(f"nvidia/cuda:{full}-{cudnn_tag}-runtime-ubuntu{ubuntu}",
                f"GPU model: CUDA {cuda}, cuDNN {cudnn or 'unknown'}{tag}", gpu=True, install_python=True,
                notes=notes)


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """What the Dockerfile says about the version it packages."""

    model: str
    version: int
    manifest_digest: str
    env_digest: str | None
    flavor: str
    python: str
    base: Base
    created: str  # RFC 3339
    shipyard_version: str
    revision: str | None = None  # the producing run's git commit
    source: str | None = None  # where that code lives (the project's git remote)
    extra_labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.model}@{self.version}"


def labels(spec: ImageSpec) -> dict[str, str]:
    """OCI annotations (``org.opencontainers.image.*``) plus Shipyard's own: model, version and digests."""
    oci = "org.opencontainers.image"
    out = {
        f"{oci}.title": spec.model,
        f"{oci}.description": f"{spec.ref} ({spec.flavor}) served by Shipyard {spec.shipyard_version}",
        f"{oci}.version": str(spec.version),
        f"{oci}.created": spec.created,
        f"{oci}.revision": spec.revision or "unknown",
        f"{oci}.source": spec.source or "unknown",
        f"{oci}.base.name": spec.base.image,
        f"{LABEL_PREFIX}.model": spec.model,
        f"{LABEL_PREFIX}.version": str(spec.version),
        f"{LABEL_PREFIX}.manifest-digest": spec.manifest_digest,
        f"{LABEL_PREFIX}.env-digest": spec.env_digest or "unknown",
        f"{LABEL_PREFIX}.flavor": spec.flavor,
        f"{LABEL_PREFIX}.shipyard-version": spec.shipyard_version,
    }
    out.update(spec.extra_labels)
    return out


def _quoted(value: str) -> str:
    """A Dockerfile double-quoted string. Inside double quotes Docker's parser reads ``\\"``, ``\\\\`` and
    ``\\$`` as escapes and expands ``$VAR`` / ``${VAR:?...}``: a label from an untrusted record (a git remote)
    keeps its ``$`` as text, never a variable or an error; control characters become spaces."""
    text = _NOT_PRINTABLE.sub(" ", value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def healthcheck_command(port_variable: str = PORT_VARIABLE) -> list[str]:
    """Slim images have no curl: Python's urllib asks the readiness endpoint, and fails on anything but 200."""
    code = ("import os,urllib.request as u;"
            f"u.urlopen('http://127.0.0.1:'+os.environ.get('{port_variable}','{DEFAULT_PORT}')+'{READY_PATH}',"
            "timeout=4)")
    return ["python3", "-c", code]


def deps_tag(dependencies: str, base_image: str) -> str:
    """The local tag of the dependency image: named by what it installs and what it starts from, so every
    version (and every model) with the same lock and base shares it, and it is built once."""
    key = hashlib.sha256(f"{dependencies}\0{base_image}".encode()).hexdigest()[:20]
    return f"shipyard/deps:{key}"


def deps_dockerfile(base: Base, dependencies: str) -> str:
    """``deps/Dockerfile``: the base image and the locked dependencies, the layers every version shares."""
    lines = [f"# Rendered by Shipyard: the dependencies layer ({_one_line(base.reason, 200)}), shared by every "
             "image with the same",
             "# lock and base. Self-contained: nothing is downloaded while it builds.",
             f"FROM {base.image}"]
    if base.install_python:
        lines.append("RUN apt-get update && apt-get install -y --no-install-recommends python3 "
                     "&& rm -rf /var/lib/apt/lists/*")
    lines += [f"LABEL {LABEL_PREFIX}.dependencies={_quoted(dependencies)}",
              f"COPY site/ {SITE_DIR}/"]
    return "\n".join(lines) + "\n"


def dockerfile(spec: ImageSpec, deps_image: str) -> str:
    """The Dockerfile of the build context: on the dependencies image (``deps/``), Shipyard, then the
    model, as a non-root user."""
    lines = [
        f"# Rendered by Shipyard {spec.shipyard_version} for {spec.ref} ({_one_line(spec.base.reason, 200)}).",
        "# Self-contained: nothing is downloaded while it builds. Build deps/ first (tagged as below), then this.",
        f"FROM {deps_image}",
        f"ENV PYTHONPATH={SITE_DIR}:{APP_DIR} PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \\",
        f"    {PORT_VARIABLE}={DEFAULT_PORT} HOME={SERVE_DIR} SHIPYARD_HOME={IMAGE_HOME} "
        f"SHIPYARD_ACTOR={IMAGE_ACTOR}",
        "# Shipyard, its entrypoint (changes with Shipyard)",
        f"COPY app/ {APP_DIR}/",
        "# the model version: its files by digest in a one-version registry (changes with every version)",
        f"COPY --chown={USER_ID}:{USER_ID} model/ {SERVE_DIR}/",
        f"ENV SHIPYARD_MODEL={spec.ref}",
        "LABEL " + " \\\n      ".join(f"{k}={_quoted(v)}" for k, v in labels(spec).items()),
        f"USER {USER_ID}:{USER_ID}",
        f"WORKDIR {SERVE_DIR}",
        f"EXPOSE {DEFAULT_PORT}",
        "HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \\",
        f"  CMD {json.dumps(healthcheck_command())}",
        f'ENTRYPOINT ["python3", "{APP_DIR}/entrypoint.py"]',
    ]
    return "\n".join(lines) + "\n"


ENTRYPOINT = f'''"""The image's entrypoint: `shipyard serve` for the packaged version, on 0.0.0.0:${PORT_VARIABLE}."""
import os
import sys

ref = os.environ.get("SHIPYARD_MODEL", "")
port = os.environ.get("{PORT_VARIABLE}", "{DEFAULT_PORT}")
sys.argv = ["shipyard", "serve", ref, "--host", "0.0.0.0", "--port", port, "--poll", "0", *sys.argv[1:]]
from shipyard.interfaces.cli.app import main  # noqa: E402

main()
'''


def build_commands(context: str, tag: str, deps_image: str, engine: str = "docker") -> list[list[str]]:
    """What builds the context by hand: the dependencies image, then the model's; no network is needed."""
    return [[engine, "build", "--network", "none", "-t", deps_image, f"{context.rstrip('/')}/deps"],
            [engine, "build", "--network", "none", "-t", tag, context]]


def default_tag(model: str, version: int) -> str:
    """``shipyard/iris:3``: a repository name is lowercase, so is the tag made from the model's name."""
    repo = re.sub(r"[^a-z0-9._-]+", "-", model.lower()).strip("._-") or "model"
    return f"shipyard/{repo}:{version}"


# -- verify --image: the request production sends, and the answer read back as the stored outputs ----------

def infer_request(inputs: Any, signature: Mapping[str, Any] | None) -> dict[str, Any]:
    """The Open Inference Protocol request for the golden inputs (one tensor, one row per example); a table's
    examples (``{"columns", "data"}``, from a DataFrame) are sent as their rows, as production sends them.
    TypeError when they are not rows of values."""
    from shipyard.core.serving.oip import INPUT_NAME, output_tensor, signature_datatype

    if isinstance(inputs, Mapping) and inputs.get("format") == "csr":  # a sparse model's examples: its CSR parts
        return {"inputs": [output_tensor(part, list(inputs.get(part) or []), kind) for part, kind in
                           (("indptr", "INT64"), ("indices", "INT64"), ("values", "FP64"))]}
    rows = inputs["data"] if isinstance(inputs, Mapping) and "data" in inputs else inputs
    if not isinstance(rows, list):
        raise TypeError(f"the golden inputs are a JSON {type(rows).__name__}, not a list of rows")
    declared = signature_datatype((signature or {}).get("inputs"))
    return {"inputs": [output_tensor(INPUT_NAME, list(rows), declared)]}


def answer_outputs(body: Mapping[str, Any]) -> list[Any]:
    """The first output tensor of an OIP answer, nested back into rows by its shape (as the examples store
    them); ValueError when the answer is not a well-formed tensor."""
    outputs = body.get("outputs")
    if not isinstance(outputs, list) or not outputs or not isinstance(outputs[0], Mapping):
        raise ValueError("the answer has no output tensor")
    shape, data = outputs[0].get("shape"), outputs[0].get("data")
    if not isinstance(shape, list) or not 0 < len(shape) <= 32 or \
            not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ValueError(f"the output tensor's shape is {str(shape)[:60]}")
    if not isinstance(data, list):
        raise ValueError("the output tensor has no data list")
    total = 1
    for d in shape:
        total *= d
    if total != len(data):
        raise ValueError(f"the output tensor's shape {shape} does not hold its {len(data)} values")
    nested: list[Any] = list(data)
    for d in reversed(shape[1:]):
        nested = [nested[i:i + d] for i in range(0, len(nested), d)]
    return nested
