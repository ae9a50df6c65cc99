"""Runs in SQL: params, metrics (history and latest), tags, artifacts; reads and searches through ``runquery``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence

import sqlalchemy as sa

from shipyard.adapters.db import runquery
from shipyard.adapters.db import schema as t
from shipyard.adapters.db.base import SqlBase, fits
from shipyard.core.artifacts.digest import Digest
from shipyard.core.lineage.records import ArtifactRecord, Metric, RunRecord, RunStatus
from shipyard.core.registry.records import RESULT_ACTIONS
from shipyard.errors import ConflictError, ImmutableError, NotFoundError

_CHUNK = runquery.CHUNK  # run ids per IN list of the batched reads


class SqlRuns(runquery.RunReads, SqlBase):
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

    @contextlib.contextmanager
    def fetching(self) -> Iterator[runquery.Fetch]:
        """One read transaction, as ``runquery``'s statements run in it (SQL text with ``:name`` parameters)."""
        with self.read() as conn:
            yield lambda sql, params: conn.execute(sa.text(sql), params).all()

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


def _text(digest: Digest | None) -> str | None:
    return None if digest is None else str(digest)

