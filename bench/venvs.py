"""Each competitor lives in its own venv under bench/.venvs, installed on first use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

VENVS = Path(__file__).resolve().parent / ".venvs"


def tool_python(name: str, specs: list[str], module: str | None = None) -> str:
    """The python of bench/.venvs/NAME, created and given ``specs`` unless ``module`` already imports there."""
    py = VENVS / name / "bin" / "python"
    check = module or name
    if not py.exists() or subprocess.run([str(py), "-c", f"import {check}"], capture_output=True).returncode:
        print(f"installing {' '.join(specs)} into {VENVS / name} (first run only)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENVS / name)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", *specs], check=True)
    return str(py)
