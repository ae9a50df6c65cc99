"""A model version's CycloneDX 1.6 SBOM, written with ``cyclonedx-python-lib`` and validated against the 1.6
JSON schema the library ships (``JsonStrictValidator``) before anyone stores or reads it.

The subject (``metadata.component``) is the model: a ``machine-learning-model`` component whose SHA-256 is its
manifest digest, its metrics as ``shipyard:metric:*`` properties (the library has no model card yet). Its
components: the lock's packages (``pkg:pypi`` purls, hashes where the lock has them), the datasets its
producing run read (``data`` components with their digests: tracked data and stage outputs, never code; see
``core/supply/datasets.py``), and, for an image, the OS packages dpkg lists
(``pkg:deb`` purls with ``distro`` and ``upstream`` qualifiers, under a ``container`` component).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shipyard.core.supply.packages import DebPackage
from shipyard.errors import IntegrityError, MissingExtraError

SPEC = "1.6"
_HASH_NAMES = {"sha256": "SHA-256", "sha384": "SHA-384", "sha512": "SHA-512"}


@dataclass(frozen=True)
class ImagePart:
    """What was read from an image: its reference, its id, its release's purl distro and its dpkg packages."""

    ref: str
    image_id: str
    distro: str | None
    packages: tuple[DebPackage, ...] = ()


@dataclass(frozen=True)
class SbomInput:
    """What goes into an SBOM: a model version (``model`` None: an image no version is known for) and its parts."""

    model: str | None
    version: int
    manifest_digest: str
    flavor: str
    metrics: Mapping[str, float]
    pins: Sequence[tuple[str, str, Mapping[str, Any] | None]]  # (name, version, source) from the lock
    datasets: Sequence[tuple[str, str]] = ()  # (path, digest) the producing run read
    run_id: str | None = None
    image: ImagePart | None = None
    tool_version: str = ""
    notes: Sequence[str] = field(default_factory=tuple)


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


def _hashes_of(source: Mapping[str, Any] | None) -> list[Any]:
    """Hashes a lock's source holds (``{"hashes": {"sha256": HEX}}`` or PEP 610's ``"hash": "sha256=HEX"``)."""
    from cyclonedx.model import HashAlgorithm, HashType

    found: dict[str, str] = {}
    if source:
        hashes = source.get("hashes")
        if isinstance(hashes, Mapping):
            found.update({str(k): str(v) for k, v in hashes.items()})
        one = source.get("hash")
        if isinstance(one, str) and "=" in one:
            alg, _, value = one.partition("=")
            found[alg] = value
    out = []
    for alg, value in found.items():
        name = _HASH_NAMES.get(alg.lower())
        if name is not None and value and all(c in "0123456789abcdef" for c in value.lower()):
            out.append(HashType(alg=HashAlgorithm(name), content=value.lower()))
    return out


def build_sbom(spec: SbomInput) -> tuple[bytes, int]:
    """The SBOM of ``spec`` as JSON bytes, validated, and the number of packages it lists."""
    try:
        from cyclonedx.model import HashAlgorithm, HashType, Property
        from cyclonedx.model.bom import Bom
        from cyclonedx.model.component import Component, ComponentType
        from cyclonedx.output.json import JsonV1Dot6
        from packageurl import PackageURL
    except ImportError as exc:
        raise MissingExtraError("an SBOM (CycloneDX)", "governance") from exc

    bom = Bom()
    bom.metadata.tools.components.add(Component(name="shipyard", version=spec.tool_version,
                                                type=ComponentType.APPLICATION))
    model = None
    deps: list[Any] = []
    if spec.model is not None:
        model = _model_component(spec)
        bom.metadata.component = model
    for name, version, source in spec.pins:
        purl = PackageURL(type="pypi", name=name, version=version)
        comp = Component(name=name, version=version, purl=purl, bom_ref=purl.to_string(),
                         hashes=_hashes_of(source))
        bom.components.add(comp)
        deps.append(comp)
    for i, (path, digest) in enumerate(spec.datasets):
        data = Component(name=path, type=ComponentType.DATA, bom_ref=f"shipyard:data:{i}:{_hex(digest)[:16]}",
                         hashes=[HashType(alg=HashAlgorithm.SHA_256, content=_hex(digest))],
                         properties=[Property(name="shipyard:digest", value=digest)])
        bom.components.add(data)
        deps.append(data)
    count = len(spec.pins)
    if spec.image is not None:
        container = _image_component(spec.image)
        count += len(spec.image.packages)
        if model is None:
            bom.metadata.component = container
        else:
            bom.components.add(container)
            deps.append(container)
    if model is not None:
        bom.register_dependency(model, deps)
    text = JsonV1Dot6(bom).output_as_string(indent=None)
    check_document(text)
    return text.encode(), count


def _model_component(spec: SbomInput) -> Any:
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.component import Component, ComponentType

    ref = f"{spec.model}@{spec.version}"
    props = [Property(name="shipyard:flavor", value=spec.flavor),
             Property(name="shipyard:manifest", value=spec.manifest_digest)]
    if spec.run_id:
        props.append(Property(name="shipyard:run", value=spec.run_id))
    props += [Property(name=f"shipyard:metric:{k}", value=repr(float(v))) for k, v in sorted(spec.metrics.items())]
    props += [Property(name="shipyard:note", value=n) for n in spec.notes]
    return Component(name=str(spec.model), version=str(spec.version), type=ComponentType.MACHINE_LEARNING_MODEL,
                     bom_ref=f"shipyard:model:{ref}", properties=props,
                     hashes=[HashType(alg=HashAlgorithm.SHA_256, content=_hex(spec.manifest_digest))])


def _image_component(img: ImagePart) -> Any:
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.component import Component, ComponentType
    from packageurl import PackageURL

    os_comps = []
    for p in img.packages:
        quals = {k: v for k, v in (("arch", p.arch), ("distro", img.distro or "")) if v}
        if p.source != p.name or p.source_version != p.version:
            quals["upstream"] = p.source if p.source_version == p.version else f"{p.source}@{p.source_version}"
        purl = PackageURL(type="deb", namespace=(img.distro or "debian").split("-")[0], name=p.name,
                          version=p.version, qualifiers=quals)
        os_comps.append(Component(name=p.name, version=p.version, purl=purl, bom_ref=purl.to_string()))
    props = [Property(name="shipyard:image-id", value=img.image_id)]
    if img.distro is None:
        props.append(Property(name="shipyard:note", value="no Debian or Ubuntu release found in the image: its OS "
                                                          "packages cannot be scanned"))
    return Component(name=img.ref, type=ComponentType.CONTAINER, bom_ref=f"shipyard:image:{img.image_id}",
                     hashes=[HashType(alg=HashAlgorithm.SHA_256, content=_hex(img.image_id))]
                     if img.image_id.startswith("sha256:") else [], properties=props, components=os_comps)


def check_document(text: str | bytes) -> None:
    """An IntegrityError unless ``text`` is a CycloneDX 1.6 JSON document by the schema the library ships."""
    try:
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator
    except ImportError as exc:
        raise MissingExtraError("an SBOM (CycloneDX)", "governance") from exc
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text.decode() if isinstance(text, bytes) else text)
    if error is not None:
        raise IntegrityError(f"the SBOM does not validate against CycloneDX {SPEC}: {str(error)[:300]}")
