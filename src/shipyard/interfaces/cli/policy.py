"""``shipyard policy``: evaluate the project's Rego policies and run their unit tests. (Skeleton.)"""

from __future__ import annotations

import typer

app = typer.Typer(help="Policy as code: the Rego bundle in policies/ decides at every gate.", no_args_is_help=True)
