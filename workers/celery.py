"""The Celery app: queues, routing and the retry policy every Talkpay task shares."""

import os

from celery import Celery
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")

app = Celery("talkpay")
app.config_from_object("django.conf:settings", namespace="CELERY")

QUEUES = ("payments", "webhooks", "payouts", "maintenance")

app.conf.update(
    # Each queue has its own direct exchange and routing key, so a message lands in exactly one queue.
    task_queues=[Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES],
    task_default_exchange="maintenance",
    task_default_routing_key="maintenance",
    task_default_queue="maintenance",
    # Route by the stable task name's prefix: billing.payment_* → payments, and so on.
    task_routes={
        "billing.payment_*": {"queue": "payments"},
        "billing.refund_*": {"queue": "payments"},
        "billing.webhook_*": {"queue": "webhooks"},
        "payouts.*": {"queue": "payouts"},
        "*": {"queue": "maintenance"},
    },
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    result_expires=3600,
    timezone="UTC",
    enable_utc=True,
    # Every task is idempotent, so a worker lost mid-task has its message redelivered.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_track_started=True,
    broker_connection_retry_on_startup=True,
    broker_transport_options={"visibility_timeout": 3600},
    worker_send_task_events=True,
    task_send_sent_event=True,
)

app.autodiscover_tasks(["booking", "billing", "payouts", "workers"])
