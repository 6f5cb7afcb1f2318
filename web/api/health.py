import redis
from django.db import connection
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from workers import health


class _OpenView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes: list = []


class HealthView(_OpenView):
    """Liveness: the process answers and reaches its database. Load balancers and restarts use this."""

    @extend_schema(responses={200: dict})
    def get(self, request):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return Response({"status": "ok"})


class NotReady(Exception):
    """A check that ran and found a problem (its message is the detail shown)."""


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return "ok"


def _check_broker() -> str:
    from workers.celery import app

    # The broker the Celery app publishes to, as configured (one Redis PING, 2 s at most).
    client = redis.Redis.from_url(
        app.conf.broker_write_url or app.conf.broker_url, socket_timeout=2, socket_connect_timeout=2
    )
    client.ping()
    return "ok"


def _check_worker() -> str:
    ok, detail = health.check("worker")
    if not ok:
        raise NotReady(detail)
    return detail


class ReadyView(_OpenView):
    """Readiness: the database, the broker and at least one worker with a fresh heartbeat.
    503 naming the failing check otherwise, so traffic is not sent where work would only pile up."""

    @extend_schema(responses={200: dict, 503: dict})
    def get(self, request):
        checks, ready = {}, True
        for name, check in (("database", _check_database), ("broker", _check_broker), ("worker", _check_worker)):
            try:
                checks[name] = {"ok": True, "detail": check()}
            except Exception as error:
                ready = False
                detail = str(error) if isinstance(error, NotReady) else f"{type(error).__name__}: {error}"
                checks[name] = {"ok": False, "detail": detail}
        return Response({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)
