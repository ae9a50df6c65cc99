"""The rest of ``MlflowClient``'s methods on ``shipyard.Client``: files of a run (``log_dict``, ``log_text``,
``log_table``, ``log_figure``, ``log_image``), its inputs (``log_inputs``), and the registry's model-level calls
(``create_registered_model``, ``get_registered_model``, ``search_registered_models``, stages mapped to aliases).

Shipyard has aliases where MLflow had stages: ``transition_model_version_stage(name, v, "Production")`` points
``name@production`` at ``v``, and says so in a warning; a model is a name, made by its first version.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.core.lineage.records import ArtifactRecord, RunRecord
from shipyard.core.registry.records import ModelVersion
from shipyard.core.registry.refs import STAGE_ALIASES, check_model_name
from shipyard.errors import ImmutableError, InvalidInputError, NotFoundError
from shipyard.interfaces.api import content, shapes

if TYPE_CHECKING:
    from shipyard.wiring import Services

STAGES = STAGE_ALIASES  # MLflow's stage -> the alias that stands for it (models:/NAME/Production reads the same)
GONE_STAGES = ("archived", "none")
_MODEL_CONDITION = re.compile(r"""^\s*name\s*(=|==|like|ilike)\s*(?:'([^']*)'|"([^"]*)")\s*$""", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RegisteredModel:
    """MLflow's ``RegisteredModel``: the name, when its first version came, its aliases (alias -> version, as
    MLflow gives them) and its newest version. Shipyard keeps no description or tags on a model."""

    name: str
    creation_timestamp: int | None = None
    last_updated_timestamp: int | None = None
    aliases: dict[str, int] = field(default_factory=dict)
    latest_versions: list[ModelVersion] = field(default_factory=list)
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)


class MlflowMethods:
    """Mixed into ``Client``: every method names its run or model, as MlflowClient's do."""

    @property
    def services(self) -> Services:
        raise NotImplementedError

    # -- files and inputs of a run ---------------------------------------------------------------------------

    def log_dict(self, run_id: str, dictionary: Mapping[str, Any], artifact_file: str) -> ArtifactRecord:
        """Log ``dictionary`` as ``artifact_file``: YAML for ``.yaml``/``.yml``, else JSON (as MLflow)."""
        text = content.dict_text(dictionary, artifact_file)
        return content.log_file(self.services, run_id, artifact_file, lambda p: p.write_text(text, "utf-8"))

    def log_text(self, run_id: str, text: str, artifact_file: str) -> ArtifactRecord:
        if not isinstance(text, str):
            raise InvalidInputError(f"log_text takes text, not {type(text).__name__}")
        return content.log_file(self.services, run_id, artifact_file, lambda p: p.write_text(text, "utf-8"))

    def log_table(self, run_id: str, data: Any, artifact_file: str) -> ArtifactRecord:
        """A dict of columns or a pandas DataFrame, stored as MLflow's ``{"columns": [...], "data": [...]}``."""
        text = content.table_text(data, artifact_file)
        return content.log_file(self.services, run_id, artifact_file, lambda p: p.write_text(text, "utf-8"))

    def log_figure(self, run_id: str, figure: Any, artifact_file: str, *,
                   save_kwargs: Mapping[str, Any] | None = None) -> ArtifactRecord:
        """A matplotlib figure (any format ``savefig`` writes) or a plotly one (``.html``; images need kaleido)."""
        return content.log_file(self.services, run_id, artifact_file,
                                lambda p: content.write_figure(figure, p, save_kwargs))

    def log_image(self, run_id: str, image: Any, artifact_file: str | None = None, key: str | None = None,
                  step: int | None = None, timestamp: int | None = None,
                  synchronous: bool | None = None) -> ArtifactRecord:
        """A numpy array (written as PNG, no PIL needed) or a PIL image, as ``artifact_file`` or, with ``key``,
        as ``images/KEY/step-STEP.png``."""
        name = content.image_name(artifact_file, key, step)
        return content.log_file(self.services, run_id, name, lambda p: content.write_image(image, p))

    def log_inputs(self, run_id: str, datasets: Sequence[Any] | None = None, models: Sequence[Any] | None = None,
                   ) -> None:
        """Record datasets (``shipyard.data.from_pandas``/``from_numpy``, arrays, DataFrames, paths) among the
        run's inputs, each by its digest over every byte."""
        if models:
            raise InvalidInputError("log_inputs takes datasets; a model a run used is named by its version")
        for dataset in datasets or ():
            content.log_input(self.services, run_id, dataset, None, None)

    def get_parent_run(self, run_id: str) -> RunRecord | None:
        parent = self.services.tracker.get_run(run_id).parent_id
        return None if parent is None else self.services.tracker.get_run(parent)

    # -- registered models -----------------------------------------------------------------------------------

    def create_registered_model(self, name: str, tags: Mapping[str, Any] | None = None,
                                description: str | None = None, deployment_job_id: str | None = None,
                                ) -> RegisteredModel:
        """A model is a name, made by its first version: this checks the name and returns the model (with no
        versions yet, if it has none). Shipyard keeps no tags or description on a model: passing them fails."""
        if tags or description:
            raise InvalidInputError("Shipyard keeps no tags or description on a model: describe a version with "
                                    "log_model(..., description=...) or tag the run that made it")
        check_model_name(name)
        try:
            return self.get_registered_model(name)
        except NotFoundError:
            return RegisteredModel(name)

    def get_registered_model(self, name: str) -> RegisteredModel:
        check_model_name(name)
        summary = next((m for m in self.services.registry.models() if m.name == name), None)
        if summary is None:
            raise NotFoundError(f"no registered model {name!r}: a model is made by its first version "
                                "(log_model(..., registered_model_name=NAME) or register_model)")
        return self._model(summary)

    def _model(self, summary: Any) -> RegisteredModel:
        latest = self.services.registry.resolve(summary.name)
        return RegisteredModel(summary.name, round(summary.created_at * 1000), latest.creation_timestamp,
                               dict(sorted(summary.aliases.items())), [latest])

    def search_registered_models(self, filter_string: str | None = None, max_results: int = 100,
                                 order_by: Sequence[str] | None = None,
                                 page_token: str | None = None) -> list[RegisteredModel]:
        """Models matching ``"name = 'wine'"`` or ``"name LIKE 'wine%'"`` (all with none), by name, in one page."""
        if page_token or order_by:
            raise InvalidInputError("search_registered_models lists models by name in one page: it takes no "
                                    "order_by or page_token")
        if max_results < 1:
            raise InvalidInputError(f"max_results must be at least 1, not {max_results}")
        match = _name_matcher(filter_string)
        found = sorted((m for m in self.services.registry.models() if match(m.name)), key=lambda m: m.name)
        return [self._model(m) for m in found[:max_results]]

    def update_model_version(self, name: str, version: int | str, description: str | None = None) -> ModelVersion:
        """Model versions never change in Shipyard, description included: this fails unless it changes nothing."""
        mv = self.services.registry.resolve(shapes.version_ref(name, version))
        if description is not None and description != mv.description:
            raise ImmutableError(f"{mv.ref} never changes, its description included: give the description when "
                                 "it is registered (log_model(..., description=...)), or tag the run that made it")
        return mv

    def transition_model_version_stage(self, name: str, version: int | str, stage: str,
                                       archive_existing_versions: bool = False) -> ModelVersion:
        """MLflow's stages, on aliases: ``Production`` and ``Staging`` point ``name@production`` /
        ``name@staging`` at ``version`` (the audited alias move); ``Archived`` and ``None`` take those aliases off
        it. A warning says what was done."""
        mv = self.services.registry.resolve(shapes.version_ref(name, version))
        chosen = str(stage).strip().lower()
        if chosen in STAGES:
            alias = STAGES[chosen]
            from shipyard.wiring.policy import move_alias

            move_alias(self.services, mv.model, alias, mv.version, f"transition_model_version_stage {stage}")
            said = f"{mv.model}@{alias} now points at version {mv.version}"
        elif chosen in GONE_STAGES:
            gone = [a for a in mv.aliases if a in STAGES.values()]
            for alias in gone:
                self.services.registry.remove_alias(mv.model, alias, f"transition_model_version_stage {stage}")
            said = f"removed {', '.join(f'{mv.model}@{a}' for a in gone)}" if gone else "no alias to remove"
        else:
            raise InvalidInputError(f"unknown stage {stage!r}: use Production, Staging, Archived or None "
                                    "(or, better, set_registered_model_alias)")
        warnings.warn(f"Shipyard has aliases, not stages: {said} (use set_registered_model_alias and "
                      f"models:/{mv.model}@ALIAS instead of stages)", UserWarning, stacklevel=2)
        return self.services.registry.resolve(mv.ref)

    def get_latest_versions(self, name: str, stages: Sequence[str] | None = None) -> list[ModelVersion]:
        """The newest version, in a list; with ``stages``, the versions their aliases (``production``,
        ``staging``) point at, as ``transition_model_version_stage`` set them."""
        registry = self.services.registry
        if not stages:
            return [registry.resolve(check_model_name(name))]
        out = []
        for stage in stages:
            alias = STAGES.get(str(stage).strip().lower())
            if alias is None:
                raise InvalidInputError(f"unknown stage {stage!r}: Shipyard has aliases, not stages: use "
                                        f"get_model_version_by_alias({name!r}, ALIAS)")
            try:
                out.append(registry.resolve(shapes.alias_ref(name, alias)))
            except NotFoundError:
                continue
        return out


def _name_matcher(text: str | None) -> Any:
    if not text or not text.strip():
        return lambda name: True
    m = _MODEL_CONDITION.match(text)
    if m is None:
        raise InvalidInputError(f"cannot read model filter {text.strip()[:80]!r}: use name = 'NAME' or "
                                "name LIKE 'PREFIX%'")
    value = m[2] if m[2] is not None else m[3]
    if m[1] in ("=", "=="):
        return lambda name: name == value
    flags = re.IGNORECASE if m[1].lower() == "ilike" else 0
    pattern = re.compile("".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in value) + r"\Z",
                         flags)
    return lambda name: pattern.match(name) is not None
