"""``shipyard store cache``: the local cache of a store that lives in S3 (what it holds, its bound, emptying it)."""

from __future__ import annotations

import typer

from shipyard.interfaces.cli import output as out

MAX_OPTION = typer.Option(None, "--max", metavar="SIZE", help="Bound the cache to SIZE (bytes, or with a unit: "
                          "K, M, G or T, powers of 1024, e.g. 20G) and evict the least recently used objects "
                          "down to it now. The bound is kept in cache.json in the cache folder; the default is 20G.")
CLEAR_OPTION = typer.Option(False, "--clear", help="Remove every cached object. The store in S3 is not touched: "
                            "what is needed later is downloaded (and re-hashed) again.")


def size_bytes(text: str) -> int:
    """``--max``: a size as ``shipyard.config.parse_size`` reads it (``20G``, ``512M``, bytes; at most 1 PiB)."""
    from shipyard.config import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--max") from None


def cache(max_size: str | None = MAX_OPTION, clear: bool = CLEAR_OPTION, as_json: bool = out.JSON_OPTION) -> None:
    """Show or bound the local cache of a store that lives in S3.

    With the store in S3 (store: s3://bucket/prefix in shipyard.yaml, or SHIPYARD_STORE), every object
    this machine reads or writes passes through a local cache (SHIPYARD_STORE_CACHE, else .shipyard/cache).

    Each object is re-hashed as it enters the cache; the least recently used are evicted beyond its bound.

    With no option: the cache folder, its objects and bytes, its bound and the store. A local store has no
    cache (its objects are the store).
    """
    max_bytes = None if max_size is None else size_bytes(max_size)  # a bad size stops before anything changes
    from shipyard.wiring import settings_from_environment
    from shipyard.wiring.store_cache import cache_state, clear_cache, limit_cache

    settings = settings_from_environment()
    state = cache_state(settings)
    if state is None:
        if as_json:
            out.print_json({"store": str(settings.store_path), "cache": None})
        else:
            out.console().print(f"no cache: the store is local ({out.plain(str(settings.store_path))})")
        return
    evicted = cleared = freed = 0
    if clear:
        cleared, freed = clear_cache(settings)
    if max_bytes is not None:
        evicted = limit_cache(settings, max_bytes)
    if clear or max_bytes is not None:
        state = cache_state(settings) or state
    if as_json:
        out.print_json({**state.to_dict(), "cleared": cleared, "evicted": evicted})
        return
    c = out.console()
    if clear:
        c.print(f"cleared {cleared} object(s), {out.size(freed)}")
    if max_bytes is not None:
        c.print(f"bound set to {out.size(max_bytes)}; {evicted} least recently used object(s) evicted")
    endpoint = f" at {out.plain(state.endpoint)}" if state.endpoint else ""
    c.print(f"store: {out.plain(state.store)}{endpoint}")
    c.print(f"cache: {out.plain(str(state.folder))}")
    c.print(f"holds {state.objects} object(s), {out.size(state.bytes)} of {out.size(state.max_bytes)}")
