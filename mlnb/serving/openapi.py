"""The service's OpenAPI 3.0 document (``GET /openapi.json``), generated from the model's signature."""

from __future__ import annotations

import re
from typing import Any

from mlnb.serving.inputs import CSV, JSON, InputSchema
from mlnb.serving.source import Identity

_TYPES = {"double": {"type": "number"}, "float": {"type": "number"},
          "long": {"type": "integer", "minimum": -(2 ** 63), "maximum": 2 ** 63 - 1},
          "integer": {"type": "integer", "minimum": -(2 ** 31), "maximum": 2 ** 31 - 1},
          "boolean": {"type": "boolean"}, "string": {"type": "string"}}


_LABEL = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}  # a class or a value


def _value(kind: str, required: bool) -> dict[str, Any]:
    return {**_TYPES[kind], **({} if required else {"nullable": True})}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _csv_pattern(schema: InputSchema) -> str:
    """A header line and one row of plain numbers (numeric signatures); any text otherwise."""
    if not schema.numeric:
        return "^.+$"
    number = r"-?[0-9]{1,6}(\.[0-9]{1,6})?"
    header = ",".join(re.escape(n) for n in schema.names)
    return f"^{header}\\n{number}(,{number}){{{len(schema.names) - 1}}}\\n$"


def document(schema: InputSchema, identity: Identity, version: str) -> dict[str, Any]:
    names = schema.names
    record = {"type": "object", "additionalProperties": False, "required": names,
              "properties": {c.name: _value(c.type, c.required) for c in schema.columns}}
    records = {"type": "array", "minItems": 1, "items": {"$ref": "#/components/schemas/Record"}}
    columnar = {"type": "object", "additionalProperties": False, "required": names,
                "properties": {c.name: {"type": "array", "minItems": 1, "items": _value(c.type, c.required)}
                               for c in schema.columns}}
    split = {"type": "object", "additionalProperties": False, "required": ["columns", "data"], "properties": {
        "columns": {"type": "array", "items": {"type": "string", "enum": names}, "minItems": len(names),
                    "maxItems": len(names), "uniqueItems": True},
        "data": {"type": "array", "minItems": 1, "items": {"type": "array", "minItems": len(names),
                                                           "maxItems": len(names), "items": {"type": "number"}}}}}
    body_variants = [
        {"type": "object", "additionalProperties": False, "required": [key], "properties": {key: value}}
        for key, value in (("dataframe_split", split), ("dataframe_records", records), ("instances", records),
                           ("inputs", columnar))
    ]
    plain = {"application/json": {"schema": {"type": "object"}}}
    title = identity.model_name or "model"
    return {
        "openapi": "3.0.3",
        "info": {"title": f"mlnb serve: {title}", "version": version,
                 "description": "MLflow's scoring protocol, validated against the model signature. CSV "
                                "bodies may have any number of rows, quoted cells and columns in any order "
                                "(the pattern below describes one plain row)."},
        "paths": {
            "/invocations": {"post": {
                "summary": "Score rows", "operationId": "invocations",
                "requestBody": {"required": True, "content": {
                    JSON: {"schema": {"oneOf": body_variants}},
                    CSV: {"schema": {"type": "string", "pattern": _csv_pattern(schema)}}}},
                "responses": {
                    "200": {"description": "One prediction per row", "content": {JSON: {"schema": {
                        "type": "object", "required": ["predictions"],
                        "properties": {"predictions": {"type": "array"}}}}}},
                    "400": _error("Malformed body, or rows the signature does not accept"),
                    "413": _error("Body over the size limit"),
                    "415": _error("Unsupported Content-Type"),
                    "503": _error("No model ready")}}},
            "/feedback": {"post": {
                "summary": "Labels for earlier answers (by their X-Request-Id)", "operationId": "feedback",
                "requestBody": {"required": True, "content": {JSON: {"schema": {
                    "type": "object", "required": ["feedback"], "properties": {"feedback": {
                        "type": "array", "minItems": 1, "maxItems": 10000, "items": {
                            "type": "object", "required": ["request_id"],
                            "anyOf": [{"required": ["label"]}, {"required": ["labels"]}], "properties": {
                                "request_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                                "label": _LABEL, "labels": {"type": "array", "minItems": 1, "maxItems": 100000,
                                                            "items": _LABEL}}}}}}}}},
                "responses": {
                    "200": {"description": "How many labels matched an answer of this process", "content": {
                        JSON: {"schema": {"type": "object", "properties": {
                            k: {"type": "integer"} for k in ("matched", "unknown", "duplicate")}}}}},
                    "400": _error("Not a list of {request_id, label} records")}}},
            "/health": {"get": {"summary": "Alive", "operationId": "health",
                                "responses": {"200": {"description": "Alive", "content": plain}}}},
            "/ping": {"get": {"summary": "Alive (MLflow's name)", "operationId": "ping",
                              "responses": {"200": {"description": "Alive", "content": plain}}}},
            "/ready": {"get": {"summary": "Model loaded and warmed", "operationId": "ready", "responses": {
                "200": {"description": "Ready", "content": plain}, "503": _error("Not ready")}}},
            "/version": {"get": {"summary": "The model being served", "operationId": "version",
                                 "responses": {"200": {"description": "Model identity", "content": plain}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "operationId": "metrics", "responses": {
                "200": {"description": "Text exposition format", "content": {"text/plain": {
                    "schema": {"type": "string"}}}}}}},
        },
        "components": {"schemas": {
            "Record": record,
            "Error": {"type": "object", "required": ["error_code", "message"], "properties": {
                "error_code": {"type": "string"}, "message": {"type": "string"}}}}},
    }
