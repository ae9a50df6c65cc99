"""The server's OpenAPI 3.1 document: what clients (and the property-based tests) build requests from."""

from __future__ import annotations

from typing import Any

from shipyard import __version__
from shipyard.core.serving.oip import DATATYPES
from shipyard.interfaces.serving.errors import MEANING

TENSOR = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "shape": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string", "enum": sorted(DATATYPES)},
        "data": {"type": "array"},
        "parameters": {"type": "object"},
    },
}
INFER_REQUEST = {
    "type": "object",
    "required": ["inputs"],
    "properties": {"id": {"type": "string"}, "inputs": {"type": "array", "minItems": 1, "items": TENSOR},
                   "outputs": {"type": "array"}, "parameters": {"type": "object"}},
}
SPARSE_ROW = {"type": "object", "required": ["indices", "values"], "properties": {
    "indices": {"type": "array", "items": {"type": "integer", "minimum": 0}},
    "values": {"type": "array", "items": {"type": "number"}}}}
CSR = {"type": "object", "required": ["indptr", "indices", "values"], "properties": {
    "indptr": {"type": "array", "items": {"type": "integer", "minimum": 0}},
    "indices": {"type": "array", "items": {"type": "integer", "minimum": 0}},
    "values": {"type": "array", "items": {"type": "number"}},
    "shape": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "integer", "minimum": 0}}}}
PREDICT_REQUEST = {
    "type": "object",
    "required": ["instances"],
    "properties": {"instances": {"anyOf": [
        {"type": "array", "minItems": 1, "items": {"type": "array", "minItems": 1, "items": {"type": "number"}},
         "description": "rows of numbers (for a sparse model too: they are converted)"},
        {"type": "array", "minItems": 1, "items": {"type": "string"},
         "description": "one string a row, for a model registered on text"},
        {"type": "array", "minItems": 1, "items": SPARSE_ROW,
         "description": "a sparse model's rows: each row's column indices and their values"},
        {**CSR, "description": "a sparse model's rows as CSR parts (shape defaults to [rows, the model's width])"},
    ]}},
}
ERROR = {"type": "object", "properties": {"error": {"type": "string"}, "request_id": {"type": "string"}}}


def document(model: str) -> dict[str, Any]:
    def post(summary: str, schema: dict[str, Any]) -> dict[str, Any]:
        errors = {str(code): {"description": text, "content": {"application/json": {"schema": ERROR}}}
                  for code, text in MEANING.items()}
        return {"post": {"summary": summary, "requestBody": {"required": True, "content": {
            "application/json": {"schema": schema}}}, "responses": {"200": {"description": "predictions"}, **errors}}}

    def get(summary: str) -> dict[str, Any]:
        return {"get": {"summary": summary, "responses": {"200": {"description": "OK"}, "401": {
            "description": "missing or wrong API key (with --api-key, unless --public opens this route)",
            "content": {"application/json": {"schema": ERROR}}}}}}

    name_param = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    version_param = {"name": "version", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": f"Shipyard model server: {model}", "version": __version__},
        "paths": {
            "/v2": get("server metadata"),
            "/v2/health/live": get("liveness"),
            "/v2/health/ready": get("readiness"),
            "/v2/models/{name}": {**get("model metadata"), "parameters": [name_param]},
            "/v2/models/{name}/ready": {**get("model readiness"), "parameters": [name_param]},
            "/v2/models/{name}/versions/{version}": {**get("metadata of a given version"),
                                                     "parameters": [name_param, version_param]},
            "/v2/models/{name}/versions/{version}/ready": {**get("readiness of a given version"),
                                                           "parameters": [name_param, version_param]},
            "/v2/models/{name}/infer": {**post("infer (Open Inference Protocol v2)", INFER_REQUEST),
                                        "parameters": [name_param]},
            "/v2/models/{name}/versions/{version}/infer": {
                **post("infer with a given version", INFER_REQUEST), "parameters": [name_param, version_param]},
            "/predict": {**post("plain JSON rows (?proba=1 adds probabilities)", PREDICT_REQUEST), "parameters": [
                {"name": "proba", "in": "query", "required": False, "schema": {"type": "string", "enum": ["1"]},
                 "description": "also answer predict_proba's probabilities (and the classes), when the model has it"}]},
            "/metrics": get("Prometheus metrics"),
        },
        "components": {"securitySchemes": {  # what --api-key requires: either header
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
        }},
    }
