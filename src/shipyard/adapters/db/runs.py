"""Runs in SQL: params, metrics (history and latest), tags, artifacts, search."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from shipyard.adapters.db import schema as t
from shipyard.adapters.db.base import SqlBase, fits
from shipyard.core.artifacts.digest import Digest
from shipyard.core.lineage.records import ArtifactRecord, CodeVersion, Metric, RunRecord, RunStatus
from shipyard.core.lineage.search import Condition
from shipyard.core.registry.records import RESULT_ACTIONS
from shipyard.errors import (
    ConflictError,
    ImmutableError,
    IntegrityError,
    InvalidInputError,
    NotFoundError,
    ShipyardError,
)

_CHUNK = 500
_OPS = {"=": "__eq__", "!=": "__ne__", "<": "__lt__", "<=": "__le__", ">": "__gt__", ">=": "__ge__"}
_ORDER_FIELDS = {"start_time": t.runs.c.start_time, "name": t.runs.c.name, "end_time": t.runs.c.end_time}


_SHOWN_MATCHES = 5  # run ids an ambiguous prefix error lists


class SqlRuns(SqlBase):
    def __init__(self, url: str, engine: sa.Engine | None = None) -> None:
        super().__init__(url, engine)
        # built once: constructing statements costs more than running them on the per-call logging path.
        # A metric row is inserted only while its run is running, in the same statement: a process that holds
        # a run open (its own, or one handed over by the pipeline) skips the lookup, and a run another process
        # ended in the meantime still refuses the write (see log_metrics).
        m = t.metrics.c
        cols = ("run_id", "key", "value", "step", "timestamp")
        params = [sa.bindparam(c, type_=m[c].type) for c in cols]
        running = sa.exists().where(t.runs.c.id == sa.bindparam("run_id", type_=m.run_id.type),
                                    t.runs.c.status == RunStatus.RUNNING.value)
        self._guarded_insert = (t.metrics.insert().from_select(list(cols), sa.select(*params).where(running))
                                .execution_options(preserve_rowcount=True))  # SQLAlchemy keeps it for UPDATE only
        self._metric_insert = t.metrics.insert()
        upsert = self.upsert(t.latest_metrics)
        ex, lm = upsert.excluded, t.latest_metrics.c
        self._latest_upsert = upsert.on_conflict_do_update(
            index_elements=[lm.run_id, lm.key],
            set_={"value": ex.value, "step": ex.step, "timestamp": ex.timestamp},
            where=sa.or_(ex.step > lm.step, sa.and_(ex.step == lm.step, ex.timestamp >= lm.timestamp)),
        )

    def create_run(self, run: RunRecord) -> None:
        code = run.code
        with self.write() as conn:
            conn.execute(t.runs.insert().values(**fits(t.runs, dict(
                id=run.id, name=run.name, experiment=run.experiment, status=str(run.status),
                start_time=run.start_time, end_time=run.end_time, user=run.user, host=run.host,
                pid=run.pid, git_commit=code.commit, git_branch=code.branch, git_dirty=code.dirty,
                git_diff_digest=_text(code.diff_digest), git_repo=code.repo, env_digest=_text(run.env_digest),
                parent_id=run.parent_id,
            ))))
            if run.tags:
                conn.execute(t.tags.insert(), [fits(t.tags, {"run_id": run.id, "key": k, "value": v})
                                               for k, v in run.tags.items()])

    def end_run(self, run_id: str, status: RunStatus, end_time: float) -> None:
        with self.write() as conn:
            done = conn.execute(
                t.runs.update().where(t.runs.c.id == run_id, t.runs.c.status == str(RunStatus.RUNNING))
                .values(status=str(status), end_time=end_time)
            ).rowcount
            if not done:
                current = conn.execute(sa.select(t.runs.c.status).where(t.runs.c.id == run_id)).scalar()
                if current is None:
                    raise NotFoundError(f"run {run_id} not found")

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        with self.write() as conn:
            existing = dict(conn.execute(
                sa.select(t.params.c.key, t.params.c.value)
                .where(t.params.c.run_id == run_id, t.params.c.key.in_(list(params)))
            ).all())
            clashes = [k for k, v in params.items() if k in existing and existing[k] != v]
            if clashes:
                k = clashes[0]
                raise ConflictError(
                    f"param {k!r} of run {run_id[:8]} is already {existing[k]!r}; params are write-once: "
                    "log the new value under another key or in a new run"
                )
            rows = [fits(t.params, {"run_id": run_id, "key": k, "value": v})
                    for k, v in params.items() if k not in existing]
            if rows:
                conn.execute(t.params.insert(), rows)

    def log_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None:
        latest: dict[str, Metric] = {}
        for m in metrics:
            cur = latest.get(m.key)
            if cur is None or (m.step, m.timestamp) >= (cur.step, cur.timestamp):
                latest[m.key] = m
        rows = [fits(t.metrics, {"run_id": run_id, "key": m.key, "value": m.value, "step": m.step,
                                 "timestamp": m.timestamp}) for m in metrics]
        if not rows:
            return
        with self.write() as conn:
            # one row through the guard, executed alone (a driver's executemany may not sum its row counts); the
            # rest in the same transaction
            if conn.execute(self._guarded_insert, rows[0]).rowcount != 1:  # the run was ended: keep nothing
                raise ImmutableError(f"run {run_id[:8]} is no longer running; its record is closed: start a new run")
            if len(rows) > 1:
                conn.execute(self._metric_insert, rows[1:])
            conn.execute(self._latest_upsert, rows if len(latest) == len(rows) else [
                {"run_id": run_id, "key": m.key, "value": m.value, "step": m.step, "timestamp": m.timestamp}
                for m in latest.values()
            ])

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        stmt = self.upsert(t.tags)
        stmt = stmt.on_conflict_do_update(index_elements=[t.tags.c.run_id, t.tags.c.key],
                                          set_={"value": stmt.excluded.value})
        with self.write() as conn:
            conn.execute(stmt, [fits(t.tags, {"run_id": run_id, "key": k, "value": v}) for k, v in tags.items()])

    def add_artifact(self, run_id: str, artifact: ArtifactRecord) -> None:
        ra = t.run_artifacts.c
        with self.write() as conn:
            current = conn.execute(
                sa.select(ra.digest).where(ra.run_id == run_id, ra.path == artifact.path)
            ).scalar()
            if current == str(artifact.digest):
                return
            if current is not None:
                raise ConflictError(
                    f"run {run_id[:8]} already has an artifact {artifact.path!r} with other content "
                    f"({current}); nothing is overwritten: log it under another name"
                )
            conn.execute(t.run_artifacts.insert().values(**fits(t.run_artifacts, dict(
                run_id=run_id, path=artifact.path, digest=str(artifact.digest), size=artifact.size,
                is_dir=artifact.is_dir,
            ))))

    def add_inputs(self, run_id: str, inputs: Mapping[str, Digest]) -> None:
        if inputs:
            with self.write() as conn:
                conn.execute(t.run_inputs.insert(), [fits(t.run_inputs, {"run_id": run_id, "path": p, "digest": str(d)})
                                                     for p, d in inputs.items()])

    def producers(self, digest: Digest) -> list[RunRecord]:
        """Finished runs that recorded ``digest`` among their outputs, newest first."""
        ra = t.run_artifacts.c
        q = (sa.select(t.runs).join(t.run_artifacts, ra.run_id == t.runs.c.id)
             .where(ra.digest == str(digest), t.runs.c.status == str(RunStatus.FINISHED))
             .order_by(t.runs.c.start_time.desc()).limit(5))
        with self.read() as conn:
            return self._hydrate(conn, conn.execute(q).all())

    def get_run(self, run_id: str) -> RunRecord:
        if len(run_id) < 4 or not run_id.isalnum():
            raise InvalidInputError(f"run id {run_id!r} is too short or malformed: give at least 4 characters")
        with self.read() as conn:
            rows = conn.execute(
                sa.select(t.runs).where(t.runs.c.id.startswith(run_id.lower(), autoescape=True))
                .order_by(t.runs.c.id).limit(_SHOWN_MATCHES + 1)
            ).all()
            if not rows:
                raise NotFoundError(f"run {run_id!r} not found; `shipyard runs list` shows recorded runs")
            if len(rows) > 1:
                some = ", ".join(r.id[:12] for r in rows[:_SHOWN_MATCHES]) + (", ..." if len(rows) > _SHOWN_MATCHES
                                                                               else "")
                raise InvalidInputError(f"run id prefix {run_id!r} matches several runs ({some}): "
                                        "give more characters")
            return self._hydrate(conn, rows)[0]

    def metric_history(self, run_id: str, key: str) -> list[Metric]:
        m = t.metrics.c
        with self.read() as conn:
            rows = conn.execute(
                sa.select(m.key, m.value, m.step, m.timestamp)
                .where(m.run_id == run_id, m.key == key).order_by(m.step, m.timestamp, m.id)
            ).all()
        return [Metric(*r) for r in rows]

    def metric_counts(self, run_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """``{run_id: {key: number of values logged}}``: which metrics are series, not single scores."""
        m = t.metrics.c
        out: dict[str, dict[str, int]] = {}
        ids = list(run_ids)
        with self.read() as conn:
            for i in range(0, len(ids), _CHUNK):
                q = (sa.select(m.run_id, m.key, sa.func.count()).where(m.run_id.in_(ids[i:i + _CHUNK]))
                     .group_by(m.run_id, m.key))
                for run_id, key, n in conn.execute(q).all():
                    out.setdefault(run_id, {})[key] = int(n)
        return out

    def search_runs(self, conditions: Sequence[Condition], limit: int,
                    order_by: str | None, lineage: bool = True) -> list[RunRecord]:
        query = sa.select(t.runs)
        for cond in conditions:
            query = query.where(_condition(cond))
        query = query.order_by(*_order(order_by)).limit(limit)
        with self.read() as conn:
            return self._hydrate(conn, conn.execute(query).all(), lineage)

    def _hydrate(self, conn: sa.Connection, rows: Sequence[sa.Row[Any]], lineage: bool = True) -> list[RunRecord]:
        ids = [r.id for r in rows]
        params = _pairs(conn, t.params, ids)
        tags = _pairs(conn, t.tags, ids)
        metrics = _pairs(conn, t.latest_metrics, ids)
        inputs = {run_id: {path: _digest(d, run_id) for path, d in pairs.items()}
                  for run_id, pairs in _pairs(conn, t.run_inputs, ids if lineage else [], value="digest",
                                              key="path").items()}
        arts: dict[str, list[ArtifactRecord]] = {}
        ra = t.run_artifacts.c
        for i in range(0, len(ids) if lineage else 0, _CHUNK):
            q = sa.select(ra.run_id, ra.path, ra.digest, ra.size, ra.is_dir).where(ra.run_id.in_(ids[i:i + _CHUNK]))
            for run_id, path, digest, size, is_dir in conn.execute(q.order_by(ra.run_id, ra.path)).all():
                arts.setdefault(run_id, []).append(ArtifactRecord(path, _digest(digest, run_id), size, bool(is_dir)))
        return [
            RunRecord(
                id=r.id, name=r.name, experiment=r.experiment, status=RunStatus(r.status),
                start_time=r.start_time, end_time=r.end_time, user=r.user, host=r.host, pid=r.pid,
                code=CodeVersion(r.git_commit, r.git_branch, bool(r.git_dirty), _maybe(r.git_diff_digest, r.id),
                                 r.git_repo),
                env_digest=_maybe(r.env_digest, r.id), parent_id=r.parent_id,
                params=params.get(r.id, {}), metrics=metrics.get(r.id, {}), tags=tags.get(r.id, {}),
                artifacts=tuple(arts.get(r.id, ())), inputs=inputs.get(r.id, {}),
            )
            for r in rows
        ]

    def referenced_digests(self) -> Iterable[Digest]:
        mv = t.model_versions.c
        queries = [
            sa.select(t.run_artifacts.c.digest),
            sa.select(t.runs.c.env_digest).where(t.runs.c.env_digest.is_not(None)),
            sa.select(t.runs.c.git_diff_digest).where(t.runs.c.git_diff_digest.is_not(None)),
            sa.select(mv.manifest_digest),
            sa.select(mv.env_digest).where(mv.env_digest.is_not(None)),
            sa.select(mv.examples_digest).where(mv.examples_digest.is_not(None)),
            sa.select(t.run_inputs.c.digest),
            # the records of a version's checks (verify, build): named by their audit events
            sa.select(t.audit_events.c.new).where(t.audit_events.c.action.in_(RESULT_ACTIONS),
                                                  t.audit_events.c.new.like("sha256:%")),
        ]
        with self.read() as conn:
            return {Digest.parse(d) for q in queries for d in conn.execute(q).scalars()}


def _pairs(conn: sa.Connection, table: sa.Table, ids: list[str], key: str = "key",
           value: str = "value") -> dict[str, dict[str, Any]]:
    """``{run_id: {key: value}}`` for a key/value table, fetched in chunks of run ids."""
    out: dict[str, dict[str, Any]] = {}
    c = table.c
    for i in range(0, len(ids), _CHUNK):
        q = sa.select(c.run_id, c[key], c[value]).where(c.run_id.in_(ids[i:i + _CHUNK]))
        for run_id, k, v in conn.execute(q).all():
            d = out.get(run_id)
            if d is None:
                d = out[run_id] = {}
            d[k] = v
    return out


def _condition(cond: Condition) -> sa.ColumnElement[bool]:
    if cond.field == "attr" and cond.key == "status":
        shown = _shown_status(str(cond.value), cond.dead)
        return shown if cond.op == "=" else ~shown
    if cond.field == "attr":
        return getattr(t.runs.c[cond.key], _OPS[cond.op])(cond.value)  # type: ignore[no-any-return]
    table = {"metrics": t.latest_metrics, "params": t.params, "tags": t.tags}[cond.field]
    match = getattr(table.c.value, _OPS[cond.op])(cond.value)
    if cond.op == "!=":  # a run without the key also differs from the value
        absent = ~sa.exists().where(table.c.run_id == t.runs.c.id, table.c.key == cond.key)
        present = sa.exists().where(table.c.run_id == t.runs.c.id, table.c.key == cond.key, match)
        return sa.or_(present, absent)
    return sa.exists().where(table.c.run_id == t.runs.c.id, table.c.key == cond.key, match)


def _shown_status(status: str, dead: Sequence[str]) -> sa.ColumnElement[bool]:
    """Runs shown with ``status``: those recorded as running in ``dead`` are shown as killed."""
    c = t.runs.c
    if not dead or status not in (RunStatus.RUNNING, RunStatus.KILLED):
        return c.status == status
    is_dead = sa.or_(*(c.id.in_(dead[i:i + _CHUNK]) for i in range(0, len(dead), _CHUNK)))
    if status == RunStatus.KILLED:
        return sa.or_(c.status == status, sa.and_(c.status == RunStatus.RUNNING.value, is_dead))
    return sa.and_(c.status == status, ~is_dead)


def _order(order_by: str | None) -> list[sa.ColumnElement[Any]]:
    if not order_by:
        return [t.runs.c.start_time.desc()]
    key, _, direction = order_by.strip().partition(" ")
    desc = direction.strip().lower() != "asc"
    if key.startswith("metrics."):
        lm = t.latest_metrics
        col: sa.ColumnElement[Any] = (
            sa.select(lm.c.value).where(lm.c.run_id == t.runs.c.id, lm.c.key == key[8:]).scalar_subquery()
        )
    elif key in _ORDER_FIELDS:
        col = _ORDER_FIELDS[key]
    else:
        raise InvalidInputError(f"cannot order by {key!r}: use start_time, end_time, name or metrics.KEY")
    return [col.desc().nulls_last() if desc else col.asc().nulls_last(), t.runs.c.id]


def _text(digest: Digest | None) -> str | None:
    return None if digest is None else str(digest)


def _digest(text: str, run_id: str) -> Digest:
    """A digest column (``sha256:<hex>`` text) read into a ``Digest``."""
    try:
        return Digest.parse(text)
    except (ShipyardError, AttributeError) as exc:
        raise IntegrityError(f"run {run_id[:8]}: a digest column of its database rows is damaged ({exc}); "
                             "restore the database from a backup") from None


def _maybe(text: str | None, run_id: str) -> Digest | None:
    return None if text is None else _digest(text, run_id)
