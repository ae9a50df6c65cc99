"""Runs recorded elsewhere (``shipyard import mlflow``), written whole: many runs in one transaction."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from shipyard.adapters.db import schema as t
from shipyard.adapters.db.base import SqlBase, fits
from shipyard.core.lineage.records import Metric, RunRecord

_CHUNK = 500  # ids per IN (...) list


class SqlImports(SqlBase):
    def existing_runs(self, run_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        with self.read() as conn:
            for start in range(0, len(run_ids), _CHUNK):
                ids = list(run_ids[start:start + _CHUNK])
                found.update(conn.execute(sa.select(t.runs.c.id).where(t.runs.c.id.in_(ids))).scalars())
        return found

    def import_runs(self, runs: Sequence[tuple[RunRecord, Sequence[Metric]]]) -> None:
        """Record finished (or still running) runs with their params, tags, metric histories and artifacts,
        all in one transaction: a failure leaves none of them."""
        run_rows, params, tags, metrics, artifacts = [], [], [], [], []
        latest: list[dict[str, object]] = []
        for run, history in runs:
            code = run.code
            run_rows.append(fits(t.runs, dict(
                id=run.id, name=run.name, experiment=run.experiment, status=str(run.status),
                start_time=run.start_time, end_time=run.end_time, user=run.user, host=run.host, pid=run.pid,
                git_commit=code.commit, git_branch=code.branch, git_dirty=code.dirty, git_diff_digest=None,
                git_repo=code.repo, env_digest=None, parent_id=run.parent_id)))
            params += [fits(t.params, {"run_id": run.id, "key": k, "value": v}) for k, v in run.params.items()]
            tags += [fits(t.tags, {"run_id": run.id, "key": k, "value": v}) for k, v in run.tags.items()]
            newest: dict[str, Metric] = {}
            for m in history:
                metrics.append({"run_id": run.id, "key": m.key, "value": m.value, "step": m.step,
                                "timestamp": m.timestamp})
                cur = newest.get(m.key)
                if cur is None or (m.step, m.timestamp) >= (cur.step, cur.timestamp):
                    newest[m.key] = m
            latest += [{"run_id": run.id, "key": m.key, "value": m.value, "step": m.step, "timestamp": m.timestamp}
                       for m in newest.values()]
            artifacts += [fits(t.run_artifacts, {"run_id": run.id, "path": a.path, "digest": str(a.digest),
                                                 "size": a.size, "is_dir": a.is_dir}) for a in run.artifacts]
        for row in metrics:  # key lengths were checked by the mapping; check once more as the columns say
            fits(t.metrics, row)
        with self.write() as conn:
            for table, rows in ((t.runs, run_rows), (t.params, params), (t.tags, tags), (t.metrics, metrics),
                                (t.latest_metrics, latest), (t.run_artifacts, artifacts)):
                if rows:
                    conn.execute(table.insert(), rows)
