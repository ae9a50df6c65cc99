"""Over-long or multi-line text from the user gets one line naming where it came from.

Attack report 13: with PostgreSQL, a 300-character SHIPYARD_ACTOR gave "the metadata database refused a
value: value too long for type character varying(255)", which does not say which value; SQLite stored it,
and an actor holding a newline went into the audit log as two lines.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import cli_env, shipyard


def test_an_over_long_or_multi_line_actor_is_refused_naming_shipyard_actor(project: Path, db_url: str) -> None:
    for actor, says in (("a" * 300, "SHIPYARD_ACTOR is 300 characters long; the limit is 255"),
                        ("alice\nroot", "SHIPYARD_ACTOR 'alice\\nroot' holds a newline")):
        env = cli_env(SHIPYARD_HOME=str(project / ".shipyard"), SHIPYARD_DB_URL=db_url, SHIPYARD_ACTOR=actor)
        done = shipyard("alias", "set", "iris", "production", "1", env=env, cwd=project, check=False)
        assert done.returncode == 2, done.stdout + done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and says in lines[0], done.stderr
        assert "character varying" not in done.stderr and "Traceback" not in done.stderr
    env = cli_env(SHIPYARD_HOME=str(project / ".shipyard"), SHIPYARD_DB_URL=db_url, SHIPYARD_ACTOR="a" * 255)
    shipyard("models", "list", env=env, cwd=project)  # the limit itself is fine
