"""What ``shipyard.yaml`` may say about CI (the ``ci:`` section), validated by pydantic as ``deploy:`` is."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from shipyard.core.deploy.config import PEP508_NAME, _Strict
from shipyard.core.deploy.imageref import check_repository
from shipyard.core.registry.refs import check_model_name
from shipyard.errors import ShipyardError

PYTHON_VERSION = re.compile(r"^3\.\d{1,2}(\.\d{1,3})?\Z")  # setup-python's python-version, GitLab's python:TAG
INSTALL = re.compile(r"^[A-Za-z0-9._~:/?#@!+,=%\[\]-]{1,500}\Z")  # a requirement, URL or path: no shell syntax
MAX_MATRIX = 32  # verify jobs per workflow run


class CISpec(_Strict):
    python: str = "3.11"
    matrix: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="package -> versions `shipyard verify --with` is run against in CI")
    model: str | None = Field(None, description="the model CI verifies, builds and promotes (default: the only one)")
    registry: str | None = Field(None, description="image repository CI pushes to (default: ghcr.io/OWNER/REPO "
                                                   "on GitHub, $CI_REGISTRY_IMAGE on GitLab)")
    install: str | None = Field(None, description="what CI installs Shipyard from: a requirement "
                                                  "(shipyard==0.1.0), a URL (git+https://host/shipyard@v0.1.0) "
                                                  "or a path in the checkout; default: shipyard==VERSION from PyPI")

    @field_validator("*", mode="before")
    @classmethod
    def _no_expressions(cls, v: object) -> object:
        """GitHub expands ``${{ }}`` in a workflow before any shell sees it: no value may carry one."""
        found = _expression_in(v)
        if found is not None:
            raise ValueError(f"{found} holds '${{{{': a GitHub Actions expression would be expanded in the "
                             "workflow; write the value itself")
        return v

    @field_validator("matrix", mode="before")
    @classmethod
    def _lists(cls, v: object) -> object:
        if isinstance(v, dict):
            return {k: tuple(x) if isinstance(x, list) else x for k, x in v.items()}
        return v

    @field_validator("matrix")
    @classmethod
    def _matrix(cls, v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        from packaging.version import InvalidVersion, Version

        if sum(len(versions) for versions in v.values()) > MAX_MATRIX:
            raise ValueError(f"at most {MAX_MATRIX} versions in all: each is a CI job")
        for package, versions in v.items():
            if not PEP508_NAME.match(package):
                raise ValueError(f"{package[:80]!r} is not a package name (PEP 508: letters, digits, '.', '_', "
                                 "'-', starting and ending with a letter or digit)")
            for version in versions:
                try:
                    Version(version)
                except InvalidVersion:
                    raise ValueError(f"{package}: {version[:80]!r} is not a version (PEP 440, e.g. 1.7.2 or "
                                     "2.5.0rc1)") from None
        return v

    @field_validator("python")
    @classmethod
    def _python(cls, v: str) -> str:
        if not PYTHON_VERSION.match(v):
            raise ValueError(f"{v[:80]!r} is not a Python version: write e.g. '3.11' (quoted, or YAML reads 3.10 "
                             "as 3.1)")
        return v

    @field_validator("model")
    @classmethod
    def _model(cls, v: str | None) -> str | None:
        if v is None:
            return None
        try:
            return check_model_name(v)
        except ShipyardError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("registry")
    @classmethod
    def _registry(cls, v: str | None) -> str | None:
        return None if v is None else check_registry(v)

    @field_validator("install")
    @classmethod
    def _install(cls, v: str | None) -> str | None:
        return None if v is None else check_install(v)


def check_registry(registry: str, what: str = "registry") -> str:
    """An image repository CI pushes to, with the registry's host first (what `docker login` is given)."""
    check_repository(registry, what)
    host = registry.split("/", 1)[0]
    if "/" not in registry or not ("." in host or ":" in host or host == "localhost"):
        raise ValueError(f"{what} {registry[:80]!r} names no registry host: write HOST/REPOSITORY, e.g. "
                         "ghcr.io/acme/iris or registry.example.com:5000/team")
    return registry


def check_install(install: str) -> str:
    """What CI installs Shipyard from, written into a shell line: a requirement, a URL or a path, with no
    spaces, quotes or shell syntax."""
    if not INSTALL.match(install):
        raise ValueError(f"{install[:80]!r} is not a requirement, URL or path CI can install (letters, digits "
                         "and . _ ~ : / ? # @ ! + , = % [ ] -; no spaces, quotes or shell syntax)")
    if install.startswith("-"):
        raise ValueError(f"{install[:80]!r} is an option, not what to install")
    if re.search(r"://[^/@]*@", install) and not re.search(r"://git@", install):
        raise ValueError("ci.install holds credentials (user:token@ in its URL) and goes into the committed "
                         "workflow: give the URL without them, and the token as a CI secret (e.g. a git credential "
                         "helper step)")
    if "://" not in install and not install.startswith((".", "/")):
        from packaging.requirements import InvalidRequirement, Requirement

        try:
            Requirement(install)
        except InvalidRequirement as exc:
            raise ValueError(f"{install[:80]!r} is not a requirement ({str(exc).splitlines()[0][:120]}): write "
                             "e.g. shipyard==0.1.0, git+https://host/shipyard@v0.1.0 or ./vendor/shipyard") from None
    return install


def _expression_in(value: object, where: str = "the value") -> str | None:
    """Where in ``value`` (a string, or keys and values of a mapping or list) ``${{`` is, or None."""
    if isinstance(value, str):
        return where if "${{" in value else None
    if isinstance(value, dict):
        for k, x in value.items():
            at = f"{k}" if where == "the value" else f"{where}.{k}"
            found = _expression_in(k, "a key") or _expression_in(x, at)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for i, x in enumerate(value):
            found = _expression_in(x, f"{where}[{i}]")
            if found is not None:
                return found
    return None


def ci_config(raw: dict[str, Any] | None) -> CISpec:
    return CISpec.model_validate(raw or {}, strict=False)
