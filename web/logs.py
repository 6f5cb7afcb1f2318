"""The web's side of structured logs (the context and the JSON format are in `workers.logs`):
a request id per request, and gunicorn's access log as JSON lines."""

from __future__ import annotations

import datetime
import json
import re
import uuid

from workers.logs import log_context

REQUEST_ID_HEADER = "X-Request-ID"
# A client-supplied request id is kept only when it is short and harmless; otherwise a new one is made.
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    """Takes the caller's X-Request-ID (a load balancer's) or makes one, logs under it, and returns it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        supplied = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = supplied if _SAFE_REQUEST_ID.match(supplied) else uuid.uuid4().hex
        request.request_id = request_id
        with log_context(request_id=request_id):
            response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response


def gunicorn_access_logger_class():
    """gunicorn's logger with the access log as JSON lines (imported by gunicorn.conf.py)."""
    from gunicorn.glogging import Logger

    class JsonAccessLogger(Logger):
        def access(self, resp, req, environ, request_time):
            if not (self.cfg.accesslog or self.cfg.logconfig or self.cfg.logconfig_dict or self.cfg.syslog):
                return
            headers = dict(resp.headers)
            line = {
                "time": datetime.datetime.now(tz=datetime.UTC).isoformat(timespec="milliseconds"),
                "level": "INFO",
                "logger": "gunicorn.access",
                "message": f"{req.method} {req.path} {resp.status_code}",
                "request_id": headers.get(REQUEST_ID_HEADER) or dict(req.headers).get(REQUEST_ID_HEADER.upper()),
                "method": req.method,
                "path": req.path,
                "query": req.query,
                "status": resp.status_code,
                "bytes": getattr(resp, "sent", None),
                "duration_ms": round(request_time.total_seconds() * 1000, 2),
                "remote_addr": environ.get("REMOTE_ADDR"),
                "user_agent": environ.get("HTTP_USER_AGENT"),
            }
            try:
                self.access_log.info(json.dumps(line))
            except Exception:
                self.error_log.exception("access log line failed")

    return JsonAccessLogger
