"""``import shipyard`` and ``shipyard --help`` stay light: heavy libraries load only when used."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("sqlalchemy", "alembic", "sklearn", "skops", "numpy", "psycopg", "torch", "starlette")


def _imported(code: str) -> set[str]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_import_shipyard_loads_no_heavy_library() -> None:
    loaded = _imported("import shipyard")
    assert "shipyard" in loaded
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
    assert "typer" not in loaded and "rich" not in loaded


def test_cli_help_loads_no_heavy_library() -> None:
    loaded = _imported("import sys; sys.argv = ['shipyard', '--help']\n"
                       "from shipyard.interfaces.cli.app import main\n"
                       "try:\n    main()\nexcept SystemExit:\n    pass")
    assert "typer" in loaded
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
