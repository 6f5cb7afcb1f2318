"""Everything under /api/ answers JSON in the API's error shape, and is never cached.

DRF's exception handler covers the views; this covers what happens around them: unrouted paths (404),
bodies over DATA_UPLOAD_MAX_MEMORY_SIZE (413), Django's own 400/403/405 pages, and unexpected exceptions
(500, logged with the traceback).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger("web.errors")

_MESSAGES = {
    400: ("bad_request", "Bad request."),
    403: ("permission_denied", "You do not have permission to perform this action."),
    404: ("not_found", "Not found."),
    405: ("method_not_allowed", "Method not allowed."),
    413: ("request_too_large", "Request body too large."),
    500: ("server_error", "Server error; the incident is logged."),
}


def error_response(
    status: int, code: str | None = None, message: str | None = None, *, request: HttpRequest | None = None
) -> JsonResponse:
    """The API's error shape; with the request, its id too (the one in X-Request-ID and in every log
    line of the request), so a user reporting a 500 gives operators the line to look for."""
    default_code, default_message = _MESSAGES.get(status, ("error", "Error."))
    message = message or default_message
    error = {"code": code or default_code, "message": message, "fields": {}}
    request_id = getattr(request, "request_id", None)
    if request_id:
        error["request_id"] = request_id
    return JsonResponse({"error": error, "detail": message}, status=status)


# Django's handlers (web.urls: handler400/403/404/500) for what no view or middleware answered: the
# API's JSON under /api/; a 500 is JSON everywhere (never Django's HTML page, which a proxy or a
# frontend cannot parse).
def server_error(request: HttpRequest) -> HttpResponse:
    return error_response(500, request=request)


def _api_or_default(status: int, default):
    def handler(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
        if request.path_info.startswith("/api/"):
            return error_response(status, request=request)
        return default(request, exception)

    return handler


def _default_views():
    from django.views import defaults

    return defaults.bad_request, defaults.permission_denied, defaults.page_not_found


bad_request = _api_or_default(400, _default_views()[0])
permission_denied = _api_or_default(403, _default_views()[1])
page_not_found = _api_or_default(404, _default_views()[2])


class ApiResponseMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    @staticmethod
    def _is_api(request: HttpRequest) -> bool:
        return request.path_info.startswith("/api/")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not self._is_api(request):
            return self.get_response(request)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and length > limit:
            response = error_response(413, request=request)
        else:
            response = self.get_response(request)
            content_type = response.get("Content-Type", "")
            if response.status_code >= 400 and not content_type.startswith("application/json"):
                response = error_response(response.status_code, request=request)
        response.setdefault("Cache-Control", "no-store")
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not self._is_api(request):
            return None
        if isinstance(exception, RequestDataTooBig):
            return error_response(413, request=request)
        if isinstance(exception, (SuspiciousOperation, PermissionDenied, Http404)):
            return None  # Django answers 400/403/404 through web.urls' handlers (JSON here)
        logger.exception("unhandled error on %s %s", request.method, request.path_info)
        return error_response(500, request=request)
