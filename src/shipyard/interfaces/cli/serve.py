"""``shipyard serve``: answer inference requests for one model version."""

from __future__ import annotations

import typer

from shipyard.interfaces.cli import output as out


def serve(
    ref: str = typer.Argument(..., help="The version to serve: NAME@ALIAS, NAME@VERSION or NAME (latest)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", "-p", help="Port to listen on."),
) -> None:
    """Serve a model: Open Inference Protocol v2 (/v2/...), plain JSON /predict, Prometheus /metrics.

    The model's files are re-hashed against the registered digests before it is loaded.
    """
    import gc
    import time

    try:
        import uvicorn

        from shipyard.interfaces.serving.app import create_app
        from shipyard.interfaces.serving.model import ServedModel
    except ModuleNotFoundError as exc:
        from shipyard.errors import MissingExtraError

        raise MissingExtraError("the model server", "serve") from exc
    from shipyard.adapters.flavors import get_flavor

    svc = out.services()
    start = time.perf_counter()
    version = svc.registry.resolve(ref)
    model = svc.registry.load(f"{version.model}@{version.version}")
    served = ServedModel(version, get_flavor(version.flavor), model, time.perf_counter() - start)
    svc.close()
    app = create_app(served)
    gc.collect()
    gc.freeze()  # the loaded model is long-lived: keep it out of every later collection (shorter pauses)
    out.console(stderr=True).print(f"serving {version.ref} ({version.flavor}) on http://{host}:{port} "
                                   f"(loaded and verified in {served.load_seconds * 1000:.0f} ms)")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
