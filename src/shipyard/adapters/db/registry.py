"""The model registry in SQL: atomic version numbers, immutable versions, audited aliases."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from shipyard.adapters.db import schema as t
from shipyard.adapters.db.base import SqlBase, fits
from shipyard.adapters.db.guards import trigger_problems
from shipyard.core.artifacts.digest import Digest
from shipyard.core.registry.records import REGISTER_ACTION, AuditEvent, ModelSummary, ModelVersion, NewVersion
from shipyard.core.registry.trust import TRUST_ACTION
from shipyard.errors import ConflictError, ImmutableError, IntegrityError, NotFoundError, ShipyardError

mv = t.model_versions.c
rm = t.registered_models.c
al = t.aliases.c


class SqlRegistry(SqlBase):
    def register_version(self, new: NewVersion) -> ModelVersion:
        now = time.time()
        with self.write() as conn:
            conn.execute(self.upsert(t.registered_models)
                         .values(**fits(t.registered_models, dict(name=new.model, last_version=0, created_at=now)))
                         .on_conflict_do_nothing(index_elements=[rm.name]))
            # the row lock (PostgreSQL) or the write lock (SQLite) serializes numbering per model
            last = conn.execute(
                sa.select(rm.last_version).where(rm.name == new.model).with_for_update()
            ).scalar_one()
            version = last + 1
            if new.requested_version is not None and new.requested_version != version:
                if new.requested_version <= last:
                    raise ImmutableError(
                        f"{new.model}@{new.requested_version} is already registered and can never change; "
                        f"register a new version instead (the next is {version})"
                    )
                raise ConflictError(
                    f"cannot register {new.model}@{new.requested_version}: versions are numbered in order "
                    f"and the next is {version}"
                )
            conn.execute(t.registered_models.update().where(rm.name == new.model).values(last_version=version))
            row = dict(model=new.model, version=version, manifest_digest=str(new.manifest_digest),
                       flavor=new.flavor, size=new.size, run_id=new.run_id, env_digest=_text(new.env_digest),
                       signature=new.signature, examples_digest=_text(new.examples_digest), metrics=new.metrics,
                       params=new.params, description=new.description, created_at=now, created_by=new.created_by)
            created = self._version_from(row, ())
            conn.execute(t.model_versions.insert().values(**fits(t.model_versions, row)))
            # the event carries the digest of the whole row: `store verify` recomputes it
            self._audit(conn, new.created_by, REGISTER_ACTION, new.model, str(version), None,
                        str(new.manifest_digest), _register_body(new.description, created.record_digest()), now)
            if new.trusted:  # in the same transaction: no version is ever seen without the trust it came with
                self._audit(conn, new.created_by, TRUST_ACTION, new.model, str(version), None,
                            _summary(new.trusted), _trust_body(new.trust_reason, new.trusted), now)
        return created

    def import_version(self, version: ModelVersion, trusted: Sequence[str], actor: str, reason: str) -> ModelVersion:
        """Record ``version`` as registered elsewhere, its number and fields unchanged (an image's
        one-version registry); only into a registry that does not hold the model yet."""
        with self.write() as conn:
            if conn.execute(sa.select(rm.name).where(rm.name == version.model)).first() is not None:
                raise ConflictError(f"cannot import {version.ref}: this registry already holds {version.model}")
            conn.execute(t.registered_models.insert().values(**fits(t.registered_models, dict(
                name=version.model, last_version=version.version, created_at=version.created_at))))
            row = {k: v for k, v in version.to_dict().items() if k != "aliases"}
            conn.execute(t.model_versions.insert().values(**fits(t.model_versions, row)))
            self._audit(conn, version.created_by, REGISTER_ACTION, version.model, str(version.version), None,
                        str(version.manifest_digest), _register_body(version.description, version.record_digest()),
                        version.created_at)
            if trusted:
                self._audit(conn, actor, TRUST_ACTION, version.model, str(version.version), None,
                            _summary(trusted), _trust_body(reason, trusted), time.time())
        return self._version_from(row, ())

    def get_version(self, model: str, version: int | None) -> ModelVersion:
        with self.read() as conn:
            q = sa.select(t.model_versions).where(mv.model == model)
            q = q.where(mv.version == version) if version is not None else q.order_by(mv.version.desc())
            row = conn.execute(q.limit(1)).first()
            if row is None:
                raise NotFoundError(self._missing(conn, model, version))
            aliases = conn.execute(
                sa.select(al.alias).where(al.model == model, al.version == row.version).order_by(al.alias)
            ).scalars().all()
            return self._version_from(row._asdict(), tuple(aliases))

    def _missing(self, conn: sa.Connection, model: str, version: int | None) -> str:
        last = conn.execute(sa.select(rm.last_version).where(rm.name == model)).scalar()
        if last is None:
            return f"model {model!r} not found; `shipyard models list` shows registered models"
        return f"{model}@{version} not found: {model} has versions 1..{last}"

    def resolve_alias(self, model: str, alias: str) -> int:
        with self.read() as conn:
            version = conn.execute(
                sa.select(al.version).where(al.model == model, al.alias == alias)
            ).scalar()
            if version is None:
                if conn.execute(sa.select(rm.name).where(rm.name == model)).first() is None:
                    raise NotFoundError(f"model {model!r} not found; `shipyard models list` shows registered models")
                known = conn.execute(sa.select(al.alias).where(al.model == model).order_by(al.alias)).scalars().all()
                hint = f"its aliases are: {', '.join(known)}" if known else "it has no aliases yet"
                raise NotFoundError(f"{model} has no alias {alias!r}; {hint} (set one with `shipyard alias set`)")
            return int(version)

    def list_models(self) -> list[ModelSummary]:
        with self.read() as conn:
            rows = conn.execute(sa.select(t.registered_models).order_by(rm.name)).all()
            alias_rows = conn.execute(sa.select(al.model, al.alias, al.version)).all()
        by_model: dict[str, dict[str, int]] = {}
        for a in alias_rows:
            by_model.setdefault(a.model, {})[a.alias] = a.version
        return [ModelSummary(r.name, r.last_version, r.created_at, by_model.get(r.name, {})) for r in rows]

    def list_versions(self, model: str) -> list[ModelVersion]:
        with self.read() as conn:
            rows = conn.execute(sa.select(t.model_versions).where(mv.model == model).order_by(mv.version)).all()
            if not rows:
                raise NotFoundError(self._missing(conn, model, None))
            aliases: dict[int, list[str]] = {}
            for a in conn.execute(sa.select(al.alias, al.version).where(al.model == model).order_by(al.alias)):
                aliases.setdefault(a.version, []).append(a.alias)
        return [self._version_from(r._asdict(), tuple(aliases.get(r.version, ()))) for r in rows]

    def set_alias(self, model: str, alias: str, version: int, actor: str, reason: str) -> AuditEvent:
        now = time.time()
        with self.write() as conn:
            self._lock_model(conn, model)
            exists = conn.execute(
                sa.select(mv.version).where(mv.model == model, mv.version == version)
            ).first()
            if exists is None:
                raise NotFoundError(self._missing(conn, model, version))
            old = conn.execute(sa.select(al.version).where(al.model == model, al.alias == alias)).scalar()
            # the audit event first: the database refuses an alias move that has no event recording it
            event = self._audit(conn, actor, "alias.set", model, alias,
                                None if old is None else str(old), str(version), reason, now)
            stmt = self.upsert(t.aliases).values(**fits(t.aliases, dict(model=model, alias=alias, version=version,
                                                                         updated_at=now)))
            conn.execute(stmt.on_conflict_do_update(
                index_elements=[al.model, al.alias], set_={"version": version, "updated_at": now}))
            return event

    def remove_alias(self, model: str, alias: str, actor: str, reason: str) -> AuditEvent:
        now = time.time()
        with self.write() as conn:
            self._lock_model(conn, model)
            old = conn.execute(sa.select(al.version).where(al.model == model, al.alias == alias)).scalar()
            if old is None:
                raise NotFoundError(f"{model} has no alias {alias!r}; nothing was changed")
            event = self._audit(conn, actor, "alias.remove", model, alias, str(old), None, reason, now)
            conn.execute(t.aliases.delete().where(al.model == model, al.alias == alias))
            return event

    @staticmethod
    def _lock_model(conn: sa.Connection, model: str) -> None:
        """Serialize alias moves of one model (PostgreSQL row lock), so each audit event's ``old`` is exact."""
        conn.execute(sa.select(rm.name).where(rm.name == model).with_for_update())

    def audit_events(self, model: str | None) -> list[AuditEvent]:
        q = sa.select(t.audit_events).order_by(t.audit_events.c.id)
        if model is not None:
            q = q.where(t.audit_events.c.model == model)
        with self.read() as conn:
            return [_event_from(r._asdict()) for r in conn.execute(q)]

    def immutability_problems(self) -> list[str]:
        """What is wrong with the triggers that keep versions, audit events and aliases from being rewritten."""
        with self.read() as conn:
            return trigger_problems(conn)

    def record_trust(self, model: str, version: int, items: Sequence[str], actor: str, reason: str) -> AuditEvent:
        """A "trust" event; its items go in the reason column as JSON (the columns are short and fixed)."""
        now = time.time()
        body = _trust_body(reason, items)
        with self.write() as conn:
            if conn.execute(sa.select(mv.version).where(mv.model == model, mv.version == version)).first() is None:
                raise NotFoundError(self._missing(conn, model, version))
            before = self._latest_trust(conn, model, version)
            event = self._audit(conn, actor, TRUST_ACTION, model, str(version),
                                None if before is None else before.new, _summary(items), body, now)
        return AuditEvent(event.id, now, actor, TRUST_ACTION, model, str(version), event.old, event.new, reason,
                          tuple(items))

    def record_result(self, model: str, version: int, action: str, record: Digest, actor: str,
                      summary: str) -> AuditEvent:
        """A check's result for a version ("verify", "build"): its record is an object, named in ``new``."""
        now = time.time()
        with self.write() as conn:
            if conn.execute(sa.select(mv.version).where(mv.model == model, mv.version == version)).first() is None:
                raise NotFoundError(self._missing(conn, model, version))
            return self._audit(conn, actor, action, model, str(version), None, str(record), summary, now)

    def latest_trust(self, model: str, version: int) -> AuditEvent | None:
        with self.read() as conn:
            return self._latest_trust(conn, model, version)

    @staticmethod
    def _latest_trust(conn: sa.Connection, model: str, version: int) -> AuditEvent | None:
        ae = t.audit_events.c
        row = conn.execute(sa.select(t.audit_events).where(
            ae.model == model, ae.action == TRUST_ACTION, ae.name == str(version)).order_by(ae.id.desc()).limit(1)
        ).first()
        return None if row is None else _event_from(row._asdict())

    @staticmethod
    def _audit(conn: sa.Connection, actor: str, action: str, model: str, name: str, old: str | None,
               new: str | None, reason: str, at: float) -> AuditEvent:
        event_id = conn.execute(t.audit_events.insert().values(**fits(t.audit_events, dict(
            at=at, actor=actor, action=action, model=model, name=name, old=old, new=new, reason=reason,
        )))).inserted_primary_key[0]  # type: ignore[index]
        return AuditEvent(int(event_id), at, actor, action, model, name, old, new, reason)

    @staticmethod
    def _version_from(row: dict[str, Any], aliases: tuple[str, ...]) -> ModelVersion:
        """A version row; its digest columns hold ``sha256:<hex>`` text, read here into ``Digest``."""
        try:
            digests = {k: None if row[k] is None else Digest.parse(row[k])
                       for k in ("manifest_digest", "env_digest", "examples_digest")}
        except (ShipyardError, AttributeError) as exc:
            raise IntegrityError(f"{row['model']}@{row['version']}: a digest column of its database row is "
                                 f"damaged ({exc}); restore the database from a backup") from None
        return ModelVersion(aliases=aliases, **{**row, **digests})


def _event_from(row: dict[str, Any]) -> AuditEvent:
    """An audit row; a "trust" row carries ``{"reason": ..., "trusted": [...]}`` in its reason column,
    a "version.register" row ``{"reason": ..., "record": "sha256:..."}`` (plain text before the record digest)."""
    if row["action"] == REGISTER_ACTION:
        return AuditEvent(**_register_fields(row))
    if row["action"] != TRUST_ACTION:
        return AuditEvent(**row)
    try:
        body = json.loads(row["reason"])
        row = {**row, "reason": str(body["reason"]), "trusted": tuple(str(i) for i in body["trusted"])}
    except (ValueError, KeyError, TypeError):  # not written by record_trust: it trusts nothing
        row = {**row, "trusted": ()}
    return AuditEvent(**row)


def _register_body(reason: str, record: str) -> str:
    return json.dumps({"reason": reason, "record": record}, sort_keys=True)


def _register_fields(row: dict[str, Any]) -> dict[str, Any]:
    try:
        body = json.loads(row["reason"])
    except ValueError:
        return row  # registered before versions carried a record digest: the reason is the description
    if isinstance(body, dict) and set(body) == {"reason", "record"} and all(isinstance(v, str) for v in body.values()):
        return {**row, "reason": body["reason"], "record": body["record"]}
    return row


def _trust_body(reason: str, items: Sequence[str]) -> str:
    return json.dumps({"reason": reason, "trusted": list(items)}, sort_keys=True)


def _summary(items: Sequence[str]) -> str:
    """What the ``new`` column shows (80 characters at most): ``pickle, 2 type(s), 1 class(es)``."""
    if not items:
        return "nothing"
    kinds = [i for i in items if ":" not in i]
    types = sum(1 for i in items if i.startswith("type:"))
    classes = sum(1 for i in items if i.startswith("class:"))
    parts = [*kinds, *([f"{types} type(s)"] if types else []), *([f"{classes} class(es)"] if classes else [])]
    return ", ".join(parts)[:80]


def _text(digest: Digest | None) -> str | None:
    return None if digest is None else str(digest)
