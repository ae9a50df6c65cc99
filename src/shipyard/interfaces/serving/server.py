"""Run an app under uvicorn with every limit set: head and keep-alive timeouts, connections, logs, open files."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import ASGIApp

from shipyard.errors import ConfigError
from shipyard.interfaces.serving.connections import (
    BACKLOG,
    HEAD_TIMEOUT,
    KEEP_ALIVE,
    MAX_CONNECTIONS,
    MAX_HEAD_BYTES,
    OPEN_FILES_RESERVE,
    Guard,
    limit_logging,
    log,
    protocol_class,
    raise_open_files_limit,
)


@dataclass(frozen=True)
class ConnectionLimits:
    head_timeout: float = HEAD_TIMEOUT
    keep_alive: float = KEEP_ALIVE
    max_connections: int = MAX_CONNECTIONS

    def __post_init__(self) -> None:
        if self.head_timeout <= 0 or self.keep_alive <= 0:
            raise ConfigError("--header-timeout and --keep-alive must be more than 0 seconds")
        if self.max_connections < 1:
            raise ConfigError(f"--max-connections must be at least 1, not {self.max_connections}")


def run(app: ASGIApp, host: str, port: int, limits: ConnectionLimits = ConnectionLimits()) -> None:
    """Serve ``app`` on ``host:port`` until SIGINT or SIGTERM."""
    import uvicorn

    cap, backlog = fit_open_files(limits.max_connections, raise_open_files_limit())
    if cap < limits.max_connections:
        log.warning("--max-connections lowered to %d: this process may open few files (ulimit -n)", cap)
    guard = Guard(head_timeout=limits.head_timeout, max_connections=cap)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            http=protocol_class(guard), timeout_keep_alive=limits.keep_alive,  # type: ignore[arg-type]
                            backlog=backlog, h11_max_incomplete_event_size=MAX_HEAD_BYTES)
    limit_logging()  # after uvicorn.Config, which configures logging
    uvicorn.Server(config).run()


def fit_open_files(max_connections: int, open_files: int) -> tuple[int, int]:
    """(connection cap, listen backlog) that can never run the process out of open files.

    asyncio accepts up to ``backlog`` connections in one go, twice before the first of them is
    checked against the cap: so the cap leaves room for two backlogs and a reserve (0: no limit known).
    """
    if not open_files:
        return max_connections, BACKLOG
    room = max(open_files - OPEN_FILES_RESERVE, 16)
    backlog = min(BACKLOG, max(room // 4, 4))
    return max(1, min(max_connections, room - 2 * backlog)), backlog
