"""One error shape for the whole API.

Every error answers `{"error": {"code", "message", "fields"}}` plus DRF's per-field messages at the
top level, so a frontend can show `field: message` next to the input that caused it.
"""

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from billing import stripe_gateway
from common import errors as domain

logger = logging.getLogger(__name__)

# The status of each domain error (common.errors knows nothing of HTTP).
DOMAIN_STATUS: dict[type[domain.DomainError], int] = {
    domain.Invalid: status.HTTP_400_BAD_REQUEST,
    domain.NotPermitted: status.HTTP_403_FORBIDDEN,
    domain.NotFound: status.HTTP_404_NOT_FOUND,
    domain.Conflict: status.HTTP_409_CONFLICT,
}


class ApiError(domain.DomainError):
    """An error of the HTTP tier itself (a header, a replayed key, an upstream outage), with its status."""

    def __init__(self, message: str, *, status_code: int, field: str | None = None, code: str | None = None):
        super().__init__(message, field=field, code=code)
        self.status_code = status_code


def domain_status(error: domain.DomainError) -> int:
    if isinstance(error, ApiError):
        return error.status_code
    for cls in type(error).__mro__:
        if cls in DOMAIN_STATUS:
            return DOMAIN_STATUS[cls]
    return status.HTTP_400_BAD_REQUEST


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def _first_message(fields: dict) -> str:
    for field, messages in fields.items():
        message = messages[0] if isinstance(messages, list) and messages else messages
        if isinstance(message, dict):
            return _first_message(message)
        return f"{field}: {message}"
    return "Invalid input."


def _stripe_error(exc: stripe_gateway.StripeGatewayError) -> Response:
    """A Stripe call the request needed failed: 503 to retry when Stripe was unreachable or busy, else 502
    (Stripe refused what we asked; logged, as it is ours to fix). Never a bare 500."""
    if isinstance(exc, stripe_gateway.TransientStripeError):
        body = {"code": "stripe_unavailable", "message": "Stripe did not answer; retry shortly.", "fields": {}}
        response = Response({"error": body}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        response["Retry-After"] = "5"
        return response
    logger.warning("Stripe refused a request's call: %s (code %s)", exc, getattr(exc, "code", ""))
    body = {"code": "stripe_refused", "message": f"Stripe refused the request: {exc}", "fields": {}}
    return Response({"error": body}, status=status.HTTP_502_BAD_GATEWAY)


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, stripe_gateway.StripeGatewayError):
        return _stripe_error(exc)
    if isinstance(exc, domain.DomainError):
        fields = {exc.field: [exc.message]} if exc.field else {}
        body = {"error": {"code": exc.code, "message": exc.message, "fields": fields}, **fields}
        return Response(body, status=domain_status(exc))
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        fields = _flatten(detail)
        response.data = {"error": {"code": "invalid", "message": _first_message(fields), "fields": fields}, **fields}
    else:
        detail = getattr(exc, "detail", str(exc))
        code = None
        if isinstance(detail, dict):
            # simplejwt's errors carry {"detail", "code", "messages"}: show its sentence, not a repr.
            code = detail.get("code")
            detail = detail.get("detail") or exc.default_detail
        code = code or getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        response.data = {"error": {"code": str(code), "message": str(detail), "fields": {}}, "detail": str(detail)}
    return response
