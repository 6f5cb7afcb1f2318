"""Prometheus metrics of the web, at `/api/metrics/`: requests and latencies by route, webhook
intake outcomes, and the business state read from the database at scrape time (bookings, payments,
refunds, payouts by status, the last ledger check).

Under gunicorn every worker process counts into PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py sets it)
and a scrape adds them up. METRICS_TOKEN, when set, is required as a Bearer token; unset, outside DEBUG,
only scrapes from this host are answered.
"""

from __future__ import annotations

import hmac
import ipaddress
import time

from django.conf import settings
from django.db.models import Count, Sum
from django.http import HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from web.api.client_ip import client_ip
from workers.metrics import QueueStateCollector, ledger_check_last, registry_for_scrape

REQUESTS = Counter("talkpay_http_requests_total", "HTTP requests answered.", ["method", "route", "status"])
LATENCY = Histogram(
    "talkpay_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WEBHOOKS = Counter(
    "talkpay_webhook_intake_total",
    "Stripe webhook deliveries, by outcome: stored (2xx), rejected (4xx, e.g. bad signature), error (5xx).",
    ["outcome"],
)
WEBHOOK_ROUTE = "api/payment/stripe/webhook/"


class RequestMetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        # The URL pattern, not the path, so ids do not make one series per booking.
        route = match.route if match is not None else "unmatched"
        LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
        REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        if route == WEBHOOK_ROUTE:
            code = response.status_code
            WEBHOOKS.labels("stored" if code < 300 else "rejected" if code < 500 else "error").inc()
        return response


class BusinessStateCollector:
    """Counts and sums by status, straight from the database at each scrape."""

    def collect(self):
        from billing.models import Payment, Refund
        from booking.models import Booking
        from payouts.models import Payout

        for name, model, amount_field, help_text in (
            ("bookings", Booking, "total_amount", "Bookings by status."),
            ("payments", Payment, "amount", "Payments by status."),
            ("refunds", Refund, "amount", "Refunds by status."),
            ("payouts", Payout, "amount", "Payouts by status."),
        ):
            count = GaugeMetricFamily(f"talkpay_{name}", help_text, labels=["status"])
            cents = GaugeMetricFamily(f"talkpay_{name}_amount_cents", f"Sum of amounts, {help_text}", labels=["status"])
            rows = {status: (0, 0) for status in model.Status.values}
            for row in model.objects.values("status").annotate(n=Count("id"), total=Sum(amount_field)):
                rows[row["status"]] = (row["n"], row["total"] or 0)
            for status, (n, total) in rows.items():
                count.add_metric([status], n)
                cents.add_metric([status], total)
            yield count
            yield cents
        try:
            last = ledger_check_last()
        except Exception:
            last = None
        problems = GaugeMetricFamily(
            "talkpay_ledger_check_problems", "Problems the last ledger check found, by check.", labels=["check"]
        )
        for check, found in ((last or {}).get("problems") or {}).items():
            problems.add_metric([check], found)
        yield problems
        yield GaugeMetricFamily(
            "talkpay_ledger_check_last_run_timestamp_seconds",
            "When the ledger check last ran (0: never).",
            value=(last or {}).get("time", 0),
        )


_collectors_registered = False


def _from_this_host(request) -> bool:
    try:
        return ipaddress.ip_address(client_ip(request)).is_loopback
    except ValueError:
        return False


def metrics_view(request):
    """The metrics carry business figures (payments, payouts): with METRICS_TOKEN set it is required;
    without it, outside DEBUG, only a scrape from this host (loopback, as the client's address is believed
    through the trusted proxies) is answered."""
    token = getattr(settings, "METRICS_TOKEN", "")
    if token:
        supplied = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(supplied.encode(), token.encode()):
            return HttpResponse(status=401, content_type="text/plain")
    elif not settings.DEBUG and not _from_this_host(request):
        message = "Metrics answer other hosts only with METRICS_TOKEN set."
        return JsonResponse({"error": {"code": "metrics_token_required", "message": message, "fields": {}}}, status=403)
    registry = registry_for_scrape()
    global _collectors_registered
    from prometheus_client.core import REGISTRY

    if registry is not REGISTRY:
        registry.register(BusinessStateCollector())
        registry.register(QueueStateCollector())
    elif not _collectors_registered:
        REGISTRY.register(BusinessStateCollector())
        REGISTRY.register(QueueStateCollector())
        _collectors_registered = True
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
