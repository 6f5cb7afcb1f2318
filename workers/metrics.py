"""Prometheus metrics of the workers: task outcomes and durations (counted by Celery signals in
every pool process), and the state of the work queue read at scrape time: queue depth, age of the
oldest pending webhook event, stuck payouts.

Prefork children count into prometheus_client's multiprocess files (PROMETHEUS_MULTIPROC_DIR); the
worker's main process serves them on WORKER_METRICS_PORT (0: no server, as under the test suite).
The last ledger check's results are kept in Redis (`ledger_check_record`), so the web reports them.
"""

from __future__ import annotations

import json
import logging
import os
import time

from celery import signals
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import REGISTRY, GaugeMetricFamily

logger = logging.getLogger(__name__)

TASKS = Counter("talkpay_celery_tasks_total", "Celery tasks finished, by task and outcome.", ["task", "outcome"])
TASK_SECONDS = Histogram(
    "talkpay_celery_task_duration_seconds",
    "Time a Celery task ran.",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
LEDGER_CHECK_KEY = "talkpay:metrics:ledger_check"
_started: dict[str, float] = {}


@signals.task_prerun.connect
def _task_started(task_id=None, **_):
    _started[task_id] = time.monotonic()


@signals.task_postrun.connect
def _task_finished(task_id=None, task=None, state=None, **_):
    started = _started.pop(task_id, None)
    if task is None:
        return
    if started is not None:
        TASK_SECONDS.labels(task.name).observe(time.monotonic() - started)
    if state in ("SUCCESS", "FAILURE", "RETRY"):
        TASKS.labels(task.name, state.lower()).inc()


@signals.task_revoked.connect
def _task_revoked(request=None, **_):
    TASKS.labels(getattr(request, "task", "unknown") or "unknown", "revoked").inc()


@signals.task_unknown.connect
def _task_unknown(name=None, **_):
    TASKS.labels(name or "unknown", "unknown").inc()


def ledger_check_record(results: dict[str, int]) -> None:
    """Keep the last ledger check (problems per check) where every scrape sees it."""
    from workers.health import _client

    try:
        _client().set(LEDGER_CHECK_KEY, json.dumps({"time": time.time(), "problems": results}))
    except Exception as error:  # a check's report must not fail because Redis is away
        logger.warning("ledger check result not recorded", extra={"error": str(error)})


def ledger_check_last() -> dict | None:
    from workers.health import _client

    raw = _client().get(LEDGER_CHECK_KEY)
    return json.loads(raw) if raw else None


class QueueStateCollector:
    """Read at every scrape: nothing is counted in advance, so every worker reports the same truth.

    The models are looked up by label (apps.get_model) rather than imported, to keep `workers` below
    the apps in the layer order; these are read-only counts for monitoring.
    """

    def collect(self):
        from django.apps import apps
        from django.conf import settings
        from django.utils import timezone

        from workers.celery import QUEUES, app

        depth = GaugeMetricFamily("talkpay_queue_depth", "Messages waiting in each Celery queue.", labels=["queue"])
        try:
            with app.connection_for_read() as connection:
                client = connection.default_channel.client
                for queue in QUEUES:
                    depth.add_metric([queue], client.llen(queue))
        except Exception as error:
            logger.warning("queue depth unavailable", extra={"error": str(error)})
        yield depth

        WebhookEvent = apps.get_model("billing", "WebhookEvent")
        Payout = apps.get_model("payouts", "Payout")
        now = timezone.now()
        oldest = (
            WebhookEvent.objects.filter(status="pending").order_by("received_at").values_list("received_at", flat=True)
        ).first()
        yield GaugeMetricFamily(
            "talkpay_webhook_oldest_pending_seconds",
            "Age of the oldest webhook event stored but not processed (0 when none).",
            value=(now - oldest).total_seconds() if oldest else 0.0,
        )
        stuck_before = now - timezone.timedelta(seconds=settings.PAYOUT_RESEND_AFTER_SECONDS)
        yield GaugeMetricFamily(
            "talkpay_payouts_stuck",
            "Payouts sent to Stripe (processing) longer than PAYOUT_RESEND_AFTER_SECONDS without confirmation.",
            value=Payout.objects.filter(status="processing", transfer_sent_at__lt=stuck_before).count(),
        )
        # payouts.services.transfers.DEFERRED: kept pending until Stripe's available balance covers them
        deferred = Payout.objects.filter(status="pending", failure_reason__startswith="Deferred: ")
        yield GaugeMetricFamily(
            "talkpay_payouts_deferred",
            "Payouts waiting for the platform's Stripe funds to become available (retried by the next run).",
            value=deferred.count(),
        )
        yield GaugeMetricFamily(
            "talkpay_webhook_events_failed",
            "Webhook events whose processing failed (need an operator or a replay).",
            value=WebhookEvent.objects.filter(status="failed").count(),
        )


def registry_for_scrape() -> CollectorRegistry:
    """The registry to expose: every process's files under PROMETHEUS_MULTIPROC_DIR, or this process's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


@signals.worker_init.connect
def _serve_metrics(**_):
    port = int(os.environ.get("WORKER_METRICS_PORT", "0") or 0)
    if not port:
        return
    registry = registry_for_scrape()
    registry.register(QueueStateCollector())
    start_http_server(port, addr=os.environ.get("WORKER_METRICS_ADDR", "127.0.0.1"), registry=registry)
    logger.info("worker metrics served", extra={"port": port})


@signals.worker_process_shutdown.connect
def _mark_child_dead(pid=None, **_):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") and pid:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)
