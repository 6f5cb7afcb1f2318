"""The error side of the OpenAPI schema: one Error shape, and the statuses every operation can answer."""

from __future__ import annotations

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """Names the `Error` component; its schema is ERROR_SCHEMA below (a field called `fields` would
    shadow the serializer's own attribute), installed by the postprocessing hook."""

    error = serializers.DictField()


ERROR_DESCRIPTIONS = {
    400: "Invalid input; `error.fields` names the fields.",
    401: "Missing, invalid, expired or revoked credentials.",
    403: "Authenticated but not allowed.",
    404: "No such object (or not yours).",
    405: "Method not allowed.",
    406: "Only application/json is served.",
    409: "The object's state does not allow this now.",
    413: "Request body too large.",
    415: "Only application/json bodies are accepted.",
    422: "The Idempotency-Key was already used with a different request body.",
    429: "Throttled or locked out; retry later.",
    500: "Unexpected server error (always JSON; the incident is logged).",
    503: "A dependency (Stripe, the broker) is unavailable; retry later.",
}

# Answers any operation can give, whatever the view declares: parsing, content negotiation, throttling and
# the middleware's body limit run before the view.
COMMON_ERRORS = (400, 405, 406, 413, 415, 429)


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    return {code: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[code]) for code in statuses}


ERROR_SCHEMA = {
    "type": "object",
    "description": '`{"error": {...}}`; DRF\'s per-field messages (or `detail`) are repeated at the top level.',
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": True},
            },
            "required": ["code", "message", "fields"],
        }
    },
    "required": ["error"],
}


def add_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: every operation documents the common error answers (and
    authenticated ones 401 and 403, those with an id in the path 404), in the one Error shape."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for path, path_item in result.get("paths", {}).items():
        for method, operation in path_item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            statuses = list(COMMON_ERRORS)
            if operation.get("security") and {} not in operation["security"]:
                statuses += [401, 403]
            paginated = any(parameter.get("name") == "page" for parameter in operation.get("parameters", []))
            if "{" in path or paginated:  # DRF answers an out-of-range page with 404
                statuses.append(404)
            responses = operation.setdefault("responses", {})
            # Answered by the HTTP server (gunicorn) before the request reaches the API, so not in its shape.
            responses.setdefault("414", {"description": "Request line too long (answered by the HTTP server)."})
            for code in statuses:
                responses.setdefault(
                    str(code),
                    {"content": {"application/json": {"schema": ref}}, "description": ERROR_DESCRIPTIONS[code]},
                )
    return result


class StampedJWTScheme(SimpleJWTScheme):
    """The API's Bearer JWT, documented as simplejwt's (the stamp check changes nothing on the wire)."""

    target_class = "web.tokens.StampedJWTAuthentication"
    name = "jwtAuth"
