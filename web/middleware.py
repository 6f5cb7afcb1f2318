"""Everything under /api/ answers JSON in the API's error shape, and is never cached.

DRF's exception handler covers the views; this covers what happens around them: unrouted paths (404),
bodies over DATA_UPLOAD_MAX_MEMORY_SIZE (413), Django's own 400/403/405 pages, and unexpected exceptions
(500, logged with the traceback).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger("web.errors")

_MESSAGES = {
    400: ("bad_request", "Bad request."),
    403: ("permission_denied", "You do not have permission to perform this action."),
    404: ("not_found", "Not found."),
    405: ("method_not_allowed", "Method not allowed."),
    413: ("request_too_large", "Request body too large."),
    500: ("server_error", "Server error; the incident is logged."),
}


def error_response(status: int, code: str | None = None, message: str | None = None) -> JsonResponse:
    default_code, default_message = _MESSAGES.get(status, ("error", "Error."))
    message = message or default_message
    body = {"error": {"code": code or default_code, "message": message, "fields": {}}, "detail": message}
    return JsonResponse(body, status=status)


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
            response = error_response(413)
        else:
            response = self.get_response(request)
            content_type = response.get("Content-Type", "")
            if response.status_code >= 400 and not content_type.startswith("application/json"):
                response = error_response(response.status_code)
        response.setdefault("Cache-Control", "no-store")
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not self._is_api(request):
            return None
        if isinstance(exception, RequestDataTooBig):
            return error_response(413)
        logger.exception("unhandled error on %s %s", request.method, request.path_info)
        return error_response(500)
