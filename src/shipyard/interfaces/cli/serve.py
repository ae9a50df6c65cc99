"""``shipyard serve``: answer inference requests for one model, with canary, shadow and hot swap."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from shipyard.interfaces.cli import output as out

MIN_WINDOW, MAX_WINDOW = 1.0, 7 * 86400.0  # --drift-window, as monitoring.window allows

if TYPE_CHECKING:
    from shipyard.core.monitoring.drift import Baseline
    from shipyard.core.registry.records import ModelVersion
    from shipyard.interfaces.serving.drift import LiveDrift
    from shipyard.interfaces.serving.logs import InferenceLog
    from shipyard.interfaces.serving.middleware.metrics import Metrics
    from shipyard.wiring import Services


def serve(
    ref: str = typer.Argument(..., help="NAME@ALIAS (followed as it moves), NAME@VERSION or NAME (latest)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", "-p", help="Port to listen on."),
    canary: str = typer.Option(None, "--canary", help="REF=PERCENT: send that share of requests to REF (iris@4=10)."),
    shadow: str = typer.Option(None, "--shadow", help="REF: mirror requests to REF; its answers are only compared."),
    sticky_header: str = typer.Option("x-request-id", "--sticky-header",
                                      help="Header whose value keeps a caller on the same side of the canary split."),
    poll: float = typer.Option(2.0, "--poll", help="Seconds between checks of the alias (0: don't follow it)."),
    batching: bool = typer.Option(True, "--batching/--no-batching",
                                  help="Merge requests that arrive while the model is busy into one predict call."),
    max_batch: int = typer.Option(64, "--max-batch", help="Most rows in one predict call."),
    timeout: float = typer.Option(30.0, "--timeout",
                                  help="Seconds a request may take, from its head to its answer (504 past it)."),
    header_timeout: float = typer.Option(10.0, "--header-timeout",
                                         help="Seconds a client has to send a request's line and headers "
                                              "before its connection is closed."),
    keep_alive: float = typer.Option(5.0, "--keep-alive", help="Seconds an idle keep-alive connection stays open."),
    max_connections: int = typer.Option(1000, "--max-connections",
                                        help="Most open connections; past it the oldest idle one is closed "
                                             "(or the new one, when none is idle)."),
    log: bool = typer.Option(True, "--log/--no-log", help="Keep an inference log (rotated into the store)."),
    log_sample: float = typer.Option(1.0, "--log-sample", help="Share of requests logged, 0 to 1."),
    log_payloads: bool = typer.Option(False, "--log-payloads", help="Also log each request's inputs and outputs."),
    api_key: str = typer.Option(None, "--api-key",
                                help="A reference to the key: env:NAME, file:PATH or vault:MOUNT/PATH#KEY; require "
                                     "it (Authorization: Bearer KEY, or x-api-key: KEY) on inference, model "
                                     "metadata and /openapi.json. Read again through the secret cache "
                                     "(secrets.ttl), so a key rotated in Vault is taken without a restart."),
    public: str = typer.Option(None, "--public",
                               help="With --api-key, what stays open without it: any of health "
                                    "(/v2/health/*, /v2/models/NAME/ready), metrics (/metrics), metadata "
                                    "(/v2, /v2/models/NAME, /openapi.json), comma-separated, or none "
                                    "(default: health,metrics). Without --api-key everything is open."),
    drift: bool = typer.Option(True, "--drift/--no-drift",
                               help="Measure drift and data quality of each served version's inputs and outputs "
                                    "against its reference profile (log_model(..., reference=X_train)), off the "
                                    "request path: Prometheus gauges and counters, drift windows in the "
                                    "inference log."),
    drift_window: float = typer.Option(None, "--drift-window", metavar="SECONDS",
                                       help="Seconds of the rolling drift window the gauges cover (default: "
                                            "monitoring.window in shipyard.yaml, 3600); counted in 12 "
                                            "sub-windows of at least 1 s, each written to the inference log."),
) -> None:
    """Serve a model: Open Inference Protocol v2 (/v2/...), plain JSON /predict, Prometheus /metrics.

    Every version's files are re-hashed against the registered digests before it is loaded, and
    warmed on its golden examples before it answers. With --api-key, every request needs the key
    except those --public leaves open (health and metrics by default). One client cannot exhaust
    the server: a body past 16 MiB is refused (413) as it streams, a request past --timeout gets
    504, a request head must arrive within --header-timeout, and at most --max-connections stay open.
    With a reference profile, each served version's drift from it is exported on /metrics (--no-drift: not).
    """
    import gc

    try:
        from shipyard.interfaces.serving.app import create_app
        from shipyard.interfaces.serving.loading import follower, load_slot
        from shipyard.interfaces.serving.middleware.metrics import Metrics
        from shipyard.interfaces.serving.router import Router
        from shipyard.interfaces.serving.server import ConnectionLimits
        from shipyard.interfaces.serving.server import run as run_server
    except ModuleNotFoundError as exc:
        from shipyard.errors import MissingExtraError

        raise MissingExtraError("the model server", "serve") from exc
    from shipyard.core.registry.refs import ModelRef
    from shipyard.core.serving.routing import parse_canary
    from shipyard.errors import InvalidInputError

    # every option is checked, and every reference resolved, before any model is loaded (seconds)
    limits = ConnectionLimits(header_timeout, keep_alive, max_connections)
    open_groups = _check_options(public, api_key, timeout, log_sample, max_batch, header_timeout, keep_alive,
                                 max_connections, poll)
    if drift_window is not None and not MIN_WINDOW <= drift_window <= MAX_WINDOW:
        raise InvalidInputError(f"--drift-window must be between {MIN_WINDOW:g} second and {MAX_WINDOW:g} seconds "
                                f"(7 days), not {drift_window:g}")
    spec = parse_canary(canary) if canary else None
    name = ModelRef.parse(ref).name  # empty for runs:/RUN_ID/PATH: its model is known once it is resolved
    for other, what in ((spec.ref if spec else None, "--canary"), (shadow, "--shadow")):
        if other is not None and name and ModelRef.parse(other).name not in ("", name):
            raise InvalidInputError(f"{what} {other} is not a version of {name}; give a version of it, "
                                    f"like {name}@2")
    if api_key:
        from shipyard.core.secrets import parse_reference

        parse_reference(api_key, "--api-key")
    _check_port(host, port)
    svc = out.services()
    key = _secret(svc, api_key) if api_key else None
    primary = _resolve(svc, ref, "")
    canary_version = _resolve(svc, spec.ref, "--canary ") if spec else None
    shadow_version = _resolve(svc, shadow, "--shadow ") if shadow else None
    for other_version, what in ((canary_version, "--canary"), (shadow_version, "--shadow")):
        if other_version is not None and other_version.model != primary.model:  # a runs:/ URI named either
            raise InvalidInputError(f"{what} {other_version.ref} is not a version of {primary.model}; give a "
                                    f"version of it, like {primary.model}@2")
    from shipyard.wiring.signing import require_signature

    checked = {mv.version: require_signature(svc, mv, "serve")  # with signing.require_signed, before any load
               for mv in (primary, canary_version, shadow_version) if mv is not None}
    from shipyard.wiring.policy import gate_serve

    gate_serve(svc, ref, [primary], checked)  # policy.require_on_serve: the bundle decides before anything loads
    if spec is not None and canary_version is not None:
        gate_serve(svc, spec.ref, [canary_version], checked)

    router = Router(load_slot(svc.registry, primary, batching, max_batch), sticky_header=sticky_header.lower())
    if spec is not None and canary_version is not None:
        router.canary = load_slot(svc.registry, canary_version, batching, max_batch)
        router.canary_percent = spec.percent
    if shadow_version is not None:
        router.shadow = load_slot(svc.registry, shadow_version, batching, max_batch)
    follow = ModelRef.parse(ref).alias is not None and poll > 0

    def admit(mv: ModelVersion) -> None:
        """What the alias's new version passes before it is served: its signature, and the policy when asked."""
        gate_serve(svc, ref, [mv], {mv.version: require_signature(svc, mv, "serve")})

    from shipyard.errors import BackendUnavailableError, ShipyardError

    warn = out.console(stderr=True)
    try:
        run = svc.tracker.start_run(name=f"serve {ref}", experiment="serving",
                                    tags={"shipyard.serve": ref, "shipyard.model": primary.model})
    except BackendUnavailableError as exc:  # a store in S3 that is down: the models are loaded, serve them
        run = None
        warn.print(f"warning: serving without a run (its inference logs stay on this machine): {exc}",
                   markup=False, soft_wrap=True)
    inference_log = None
    if log:
        from shipyard.interfaces.serving.logs import InferenceLog

        def publish(path: Path) -> None:
            if run is None:
                return
            try:
                svc.tracker.log_artifact(run.id, path, name=f"inference-logs/{path.name}")
            except ShipyardError as exc:  # kept on disk; the server goes on logging and answering
                warn.print(f"warning: inference log {path} kept on this machine, not recorded: {exc}",
                           markup=False, soft_wrap=True)
                return
            path.unlink()

        folder = svc.settings.home / "inference-logs" / (run.id if run is not None else "unrecorded")
        inference_log = InferenceLog(folder, publish, log_sample, log_payloads)
    metrics = Metrics()
    live, reference = _drift_monitor(svc, metrics, inference_log, drift_window) if drift else (None, None)
    if live is not None and reference is not None:
        for mv in {m.version: m for m in (primary, canary_version, shadow_version) if m is not None}.values():
            found = reference(mv)
            if isinstance(found, str):
                warn.print(found, markup=False, soft_wrap=True)
            else:
                live.watch(name, str(mv.version), found)
    background = follower(svc.registry, ref, poll, batching, max_batch, admit, live, reference) if follow else None

    def finish() -> None:
        from shipyard.core.lineage.records import RunStatus

        if run is not None:
            svc.tracker.end_run(run.id, RunStatus.FINISHED)

    app = create_app(router, timeout=timeout, background=background, log=inference_log, api_key=key,
                     on_shutdown=finish, public=open_groups, metrics=metrics, drift=live)
    gc.collect()
    gc.freeze()  # loaded models are long-lived: keep them out of every later collection (shorter pauses)
    extras = [f"canary {router.canary.served.version.ref} {router.canary_percent:g}%" if router.canary else "",
              f"shadow {router.shadow.served.version.ref}" if router.shadow else "",
              f"following {ref} every {poll:g} s" if follow else "",
              f"drift over {live.window:g} s" if live is not None and live.watching() else ""]
    out.console(stderr=True).print(
        f"serving {primary.ref} ({primary.flavor}) on http://{host}:{port} "
        f"(loaded and verified in {router.primary.served.load_seconds * 1000:.0f} ms)"
        + "".join(f"; {e}" for e in extras if e))
    run_server(app, host, port, limits)


def _drift_monitor(svc: Services, metrics: Metrics, log: InferenceLog | None, window: float | None
                   ) -> tuple[LiveDrift, Callable[[ModelVersion], Baseline | str]]:
    """The server's drift monitor (thresholds and window from shipyard.yaml's monitoring:, ``window`` first),
    and how a version's reference is found: its baseline, or the one line that says why drift is not measured
    and how to get it (never an error: a version without a profile is served, not watched)."""
    from shipyard.errors import MissingExtraError
    from shipyard.interfaces.serving.drift import LiveDrift
    from shipyard.interfaces.serving.loading import failure
    from shipyard.wiring.monitoring import baseline, count_rows, monitoring_spec

    spec = monitoring_spec(svc.settings.project_root)
    live = LiveDrift(metrics, count_rows, window if window is not None else spec.window, spec.thresholds, log)

    def reference(mv: ModelVersion) -> Baseline | str:
        try:
            found = baseline(svc, mv)
        except MissingExtraError:
            return (f"drift of {mv.ref} is not measured: reading its reference profile needs the monitor extra; "
                    "pip install 'shipyard[monitor]'")
        except Exception as exc:  # a broken profile costs its drift, never the serving
            return f"drift of {mv.ref} is not measured: its reference profile cannot be read ({failure(exc)})"
        if found is None:
            return (f"drift of {mv.ref} is not measured: it has no reference profile; register it with "
                    "log_model(..., reference=X_train), or give reference: (a data file) to its entry in "
                    "shipyard.yaml's models:, to get one")
        return found

    return live, reference


def _check_options(public: str | None, api_key: str | None, timeout: float, log_sample: float, max_batch: int,
                   header_timeout: float, keep_alive: float, max_connections: int, poll: float) -> frozenset[str]:
    """Refuse option values the server cannot use, in one line each; the groups ``--public`` leaves open."""
    from shipyard.errors import InvalidInputError
    from shipyard.interfaces.serving.app import parse_public

    if public is not None and api_key is None:
        raise InvalidInputError("--public only says what stays open without the key, and there is no key: every "
                                "endpoint is open; add --api-key env:NAME, or drop --public")
    open_groups = parse_public(public or "health,metrics")
    for option, value in (("--timeout", timeout), ("--header-timeout", header_timeout)):
        if not value > 0:
            raise InvalidInputError(f"{option} must be more than 0 seconds, not {value:g}")
    for option, value in (("--keep-alive", keep_alive), ("--poll", poll)):
        if not value >= 0:
            raise InvalidInputError(f"{option} must be 0 seconds or more, not {value:g}")
    if not 0 <= log_sample <= 1:
        raise InvalidInputError(f"--log-sample must be between 0 and 1, not {log_sample:g}")
    for option, count in (("--max-batch", max_batch), ("--max-connections", max_connections)):
        if count < 1:
            raise InvalidInputError(f"{option} must be at least 1, not {count}")
    return open_groups


def _check_port(host: str, port: int) -> None:
    """Refuse a port the server could not listen on (out of range, or taken), before any model loads."""
    import socket

    from shipyard.errors import InvalidInputError

    if not 0 < port < 65536:
        raise InvalidInputError(f"--port must be between 1 and 65535, not {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (OSError, UnicodeError) as exc:
        raise InvalidInputError(f"--host {host!r}: not an address this machine can listen on ({exc})") from exc
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server itself binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise InvalidInputError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); "
                                    "choose another --port or stop what holds it") from exc


def _resolve(svc: Services, ref: str, option: str) -> ModelVersion:
    """The version ``ref`` names; not found, the registry's one-line error (naming where it looked),
    prefixed with the option that named it."""
    from shipyard.errors import NotFoundError

    try:
        return svc.registry.resolve(ref)
    except NotFoundError as exc:
        if not option:
            raise
        raise NotFoundError(f"{option}{exc}") from exc


def _secret(svc: Services, reference: str) -> Callable[[], str]:
    """The API key's source: ``reference`` (env:, file:, vault:) read now, then through the secret cache at each
    request, so a rotated key is taken after ``secrets.ttl`` seconds."""
    from shipyard.wiring.secrets import secret_source

    return secret_source(svc, reference, "--api-key")
