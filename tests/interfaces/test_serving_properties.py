"""Property-based: requests built from the server's own OpenAPI document, valid or not, never get a 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import cli_env, register_constant, serving

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20)


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid against the subset of JSON Schema the server's document uses."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        required = {k: from_schema(props[k]) for k in schema.get("required", [])}
        optional = {k: from_schema(v) for k, v in props.items() if k not in required}
        return st.fixed_dictionaries(required, optional=optional)
    if kind == "array":
        items = from_schema(schema["items"]) if "items" in schema else JSON
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=6)
    if kind == "string":
        return st.text(min_size=schema.get("minLength", 0), max_size=8)
    if kind == "integer":
        return st.integers(min_value=schema.get("minimum"), max_value=6)
    if kind == "number":
        return st.floats(allow_nan=False, allow_infinity=False, width=32)
    return JSON


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Any]]]:
    home = tmp_path_factory.mktemp("props") / ".shipyard"
    env = cli_env(SHIPYARD_HOME=str(home))
    register_constant(env, "prop")
    with serving(env, "prop", "--no-log") as url:
        yield url, httpx.get(f"{url}/openapi.json").json()


def _schema(spec: dict[str, Any], path: str) -> dict[str, Any]:
    return dict(spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"])


POSTS = ["/predict", "/v2/models/prop/infer", "/v2/models/prop/versions/1/infer", "/v2/models/nope/infer"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_request_built_from_the_schema_gets_a_5xx(server: tuple[str, dict[str, Any]], data: st.DataObject) -> None:
    url, spec = server
    path = data.draw(st.sampled_from(POSTS))
    schema = _schema(spec, "/predict" if path == "/predict" else "/v2/models/{name}/infer")
    body = data.draw(from_schema(schema) | JSON, label="body")
    r = httpx.post(f"{url}{path}", content=json.dumps(body), timeout=10)
    assert r.status_code < 500, (path, body, r.text)
    if r.status_code >= 400:
        assert r.json()["error"]  # every refusal says why


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_get_a_4xx(server: tuple[str, dict[str, Any]], raw: bytes) -> None:
    url, _ = server
    r = httpx.post(f"{url}/predict", content=raw, timeout=10)
    assert r.status_code < 500
    assert httpx.get(f"{url}/v2/health/live").status_code == 200


def test_the_openapi_document_lists_every_route(server: tuple[str, dict[str, Any]]) -> None:
    _, spec = server
    assert spec["openapi"].startswith("3.") and "/v2/models/{name}/versions/{version}/infer" in spec["paths"]
    assert {"/predict", "/metrics", "/v2/health/ready"} <= set(spec["paths"])
