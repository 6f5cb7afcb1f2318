"""The Prometheus endpoint: request counts by route, webhook intake outcomes, business state."""

import re

import pytest

from booking.models import Booking
from booking.tests.factories import BookingFactory

METRICS = "/api/metrics/"


def _value(text: str, name: str, **labels) -> float | None:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = ",".join(sorted((match.group(2) or "").split(","))) if match.group(2) else ""
        if found == wanted:
            return float(match.group(3))
    return None


@pytest.mark.django_db
def test_metrics_count_requests_by_route_not_by_path(api_client):
    before = (
        _value(
            api_client.get(METRICS).content.decode(),
            "talkpay_http_requests_total",
            method="GET",
            route="api/health/",
            status="200",
        )
        or 0
    )
    api_client.get("/api/health/")
    api_client.get("/api/health/")
    text = api_client.get(METRICS).content.decode()
    assert _value(text, "talkpay_http_requests_total", method="GET", route="api/health/", status="200") == before + 2
    assert "talkpay_http_request_duration_seconds_bucket" in text


@pytest.mark.django_db
def test_metrics_show_bookings_by_status_with_amounts(api_client):
    BookingFactory(status=Booking.Status.CONFIRMED)
    BookingFactory(status=Booking.Status.CONFIRMED)
    text = api_client.get(METRICS).content.decode()
    assert _value(text, "talkpay_bookings", status="confirmed") == 2
    assert _value(text, "talkpay_bookings", status="cancelled") == 0
    total = sum(b.total_amount for b in Booking.objects.all())
    assert _value(text, "talkpay_bookings_amount_cents", status="confirmed") == total
    for name in (
        "talkpay_payments",
        "talkpay_refunds",
        "talkpay_payouts",
        "talkpay_queue_depth",
        "talkpay_webhook_oldest_pending_seconds",
        "talkpay_payouts_stuck",
        "talkpay_ledger_check_last_run_timestamp_seconds",
    ):
        assert f"# TYPE {name} gauge" in text, name


@pytest.mark.django_db
def test_a_webhook_with_a_bad_signature_counts_as_rejected(api_client):
    def rejected():
        return _value(api_client.get(METRICS).content.decode(), "talkpay_webhook_intake_total", outcome="rejected") or 0

    before = rejected()
    response = api_client.post(
        "/api/payment/stripe/webhook/", data="{}", content_type="application/json", HTTP_STRIPE_SIGNATURE="t=1,v1=bad"
    )
    assert response.status_code == 400
    assert rejected() == before + 1


@pytest.mark.django_db
def test_metrics_can_require_a_token(api_client, settings):
    settings.METRICS_TOKEN = "scrape-secret"
    assert api_client.get(METRICS).status_code == 401
    assert api_client.get(METRICS, HTTP_AUTHORIZATION="Bearer scrape-secret").status_code == 200


@pytest.mark.django_db
def test_without_a_token_only_this_host_may_scrape_outside_debug(api_client, settings):
    settings.METRICS_TOKEN = ""
    settings.DEBUG = False
    assert api_client.get(METRICS, REMOTE_ADDR="127.0.0.1").status_code == 200
    assert api_client.get(METRICS, REMOTE_ADDR="::1").status_code == 200
    refused = api_client.get(METRICS, REMOTE_ADDR="203.0.113.9")
    assert refused.status_code == 403 and b"METRICS_TOKEN" in refused.content
    # behind a trusted proxy on this host, the client is the proxy's X-Forwarded-For entry
    settings.TRUSTED_PROXY_COUNT = 1
    assert api_client.get(METRICS, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    settings.TRUSTED_PROXY_COUNT = 0
    settings.METRICS_TOKEN = "scrape-secret"
    assert (
        api_client.get(METRICS, REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer scrape-secret").status_code == 200
    )
    settings.DEBUG = True
    settings.METRICS_TOKEN = ""
    assert api_client.get(METRICS, REMOTE_ADDR="203.0.113.9").status_code == 200


@pytest.mark.django_db
def test_ledger_check_results_reach_the_metrics(api_client):
    from workers.metrics import ledger_check_record

    ledger_check_record({"billing.invariants.balanced": 0, "payouts.invariants.paid_once": 2})
    text = api_client.get(METRICS).content.decode()
    assert _value(text, "talkpay_ledger_check_problems", check="payouts.invariants.paid_once") == 2
    assert _value(text, "talkpay_ledger_check_last_run_timestamp_seconds") > 0


@pytest.mark.django_db
def test_the_dashboard_and_the_alerts_query_metrics_that_exist(api_client):
    from pathlib import Path

    from prometheus_client import generate_latest
    from prometheus_client.core import REGISTRY

    ops = Path(__file__).resolve().parents[2] / "ops"
    # the web's scrape, plus this process's worker counters (the worker serves those)
    exposed = api_client.get(METRICS).content.decode() + generate_latest(REGISTRY).decode()
    names = set(re.findall(r"^# TYPE (\w+) ", exposed, re.MULTILINE))
    names |= {f"{name}_{suffix}" for name in names for suffix in ("bucket", "sum", "count", "total")}
    for path in (ops / "grafana-dashboard.json", ops / "prometheus-alerts.yml"):
        used = set(re.findall(r"\btalkpay_\w+", path.read_text())) - {"talkpay"}
        assert used and used <= names, (path.name, used - names)
