"""The schema revisions this Shipyard knows (the migrations' ids), without importing SQLAlchemy or alembic.

``tests/test_db_reads.py`` checks that these equal what alembic reads from ``migrations/versions``, so a new
migration cannot leave them behind.
"""

from __future__ import annotations

HEAD_REVISION = "0003"
REVISIONS = ("0001", "0002", "0003")
SQLITE_BUSY_TIMEOUT_MS = 30_000
