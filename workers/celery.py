"""The Celery app: queues, routing and the retry policy every Talkpay task shares."""

import inspect
import logging.config
import os

from celery import Celery, signals
from django.conf import settings
from kombu import Exchange, Queue

from workers.retry import BACKOFF_CAP

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")

app = Celery("talkpay", task_cls="workers.retry:TalkpayTask")
app.config_from_object("django.conf:settings", namespace="CELERY")

QUEUES = ("stripe", "payments", "webhooks", "payouts", "maintenance")
# The tasks whose work is a Stripe write: on their own queue (and their own worker under `make run` and
# compose), so a Stripe that hangs or throttles holds up only them, never webhooks, the ledger or sweeps.
STRIPE_TASKS = (
    "billing.payment_intent_create",
    "billing.payment_intent_cancel",
    "billing.refund_create",
    "billing.clawback_execute",
    "payouts.payout_execute",
    "subscriptions.subscription_create_on_stripe",
    "subscriptions.plan_sync",
)

# Tasks that may run longer than CELERY_TASK_TIME_LIMIT: a payout run sends many transfers.
LONG_TASKS = ("payouts.run_due", "payouts.sweep_stuck")
# A message a worker took and never acknowledged (the worker was killed) is delivered again after the
# visibility timeout. It must outlast the longest task and the longest retry countdown (a retried task
# waits for its countdown unacknowledged, on the worker), or a running task is delivered twice: so it
# is the long time limit plus the backoff cap plus a minute, 11 minutes by default, not an hour. Lost
# work is found sooner than that by the sweepers anyway (workers.schedules).
VISIBILITY_TIMEOUT_SECONDS = int(settings.CELERY_LONG_TASK_TIME_LIMIT + BACKOFF_CAP + 60)


def _broker_transport_options() -> dict:
    """Fail fast when Redis is down, refusing or frozen: every socket operation is bounded, and a
    publish tries to connect at most CELERY_BROKER_PUBLISH_MAX_RETRIES more times, a few tenths of a
    second apart; the rows are the record and the sweepers enqueue again (workers.outbox)."""
    return {
        "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
        "socket_timeout": settings.CELERY_BROKER_SOCKET_TIMEOUT,
        "socket_connect_timeout": settings.CELERY_BROKER_SOCKET_CONNECT_TIMEOUT,
        "socket_keepalive": True,
        "retry_on_timeout": False,
        # kombu's Connection.default_channel (every publish) reads these; the worker's consumer
        # reconnects with its own policy (broker_connection_max_retries).
        "max_retries": settings.CELERY_BROKER_PUBLISH_MAX_RETRIES,
        "interval_start": 0,
        "interval_step": 0.1,
        "interval_max": 0.2,
    }


app.conf.update(
    # Each queue has its own direct exchange and routing key, so a message lands in exactly one queue.
    task_queues=[Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES],
    task_default_exchange="maintenance",
    task_default_routing_key="maintenance",
    task_default_queue="maintenance",
    # Stripe writes by name, then by the stable task name's prefix: billing.payment_* → payments, and so on.
    task_routes={
        **{name: {"queue": "stripe"} for name in STRIPE_TASKS},
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
    # CELERY_TASK_SOFT_TIME_LIMIT / CELERY_TASK_TIME_LIMIT come from the settings; the long tasks' here.
    task_annotations={
        name: {
            "soft_time_limit": settings.CELERY_LONG_TASK_TIME_LIMIT - 30,
            "time_limit": settings.CELERY_LONG_TASK_TIME_LIMIT,
        }
        for name in LONG_TASKS
    },
    broker_connection_retry_on_startup=True,
    broker_transport_options=_broker_transport_options(),
    # The result backend (same Redis) fails as fast: a worker storing a result retries a few times,
    # a web process never waits on it (workers.outbox publishes without results).
    redis_socket_timeout=settings.CELERY_BROKER_SOCKET_TIMEOUT,
    redis_socket_connect_timeout=settings.CELERY_BROKER_SOCKET_CONNECT_TIMEOUT,
    result_backend_transport_options={
        "retry_policy": {"max_retries": 3, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
    },
    # Task events (received, started, succeeded: three Redis PUBLISHes per task, sent by the worker's main
    # process) only while someone watches: Flower turns them on in every worker every 5 s while it runs
    # (its --enable-events, on by default), so `make run`'s Flower sees every task. Left on for good they
    # took a quarter of a core in the worker's main process at `make load`'s 20 users
    # (CELERY_WORKER_SEND_TASK_EVENTS=true keeps them on without Flower). No `task-sent` event ever: it
    # was a second Redis publish for every enqueue (0.27 ms of CPU each, measured).
    worker_send_task_events=settings.CELERY_WORKER_SEND_TASK_EVENTS,
    task_send_sent_event=False,
)

# By name, so `workers` imports none of the apps above it; `web` holds the jobs that see every app.
app.autodiscover_tasks(["booking", "billing", "payouts", "subscriptions", "workers", "web"])


@signals.worker_init.connect
def _worker_broker_timeouts(**_):
    """Workers wait longer on Redis than a web request may: their commands (acks, restores, the
    publishes of retries) sit on a busy event loop, not in front of a client."""
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        "socket_timeout": settings.CELERY_WORKER_BROKER_SOCKET_TIMEOUT,
        "socket_connect_timeout": settings.CELERY_WORKER_BROKER_SOCKET_TIMEOUT,
    }


# By name: the step is loaded when a worker starts, after Django is set up (workers.apps connects the
# metric signals then too).
app.steps["worker"].add("workers.health:WorkerHeartbeat")
# Header that carries the web request's id (web.logs) into the tasks that request enqueued.
REQUEST_ID_HEADER = "talkpay_request_id"


@signals.worker_process_init.connect
@signals.worker_ready.connect
def _heap_freeze(**_):
    """A pool process once it is set up, and the worker's main process (a threads pool's tasks run there)
    once it is ready: full collections stay off their startup objects (common.heap)."""
    from common.heap import heap_freeze_startup_objects

    heap_freeze_startup_objects()


@signals.setup_logging.connect
def _use_django_logging(**_):
    """Workers and beat log with Django's LOGGING (JSON lines) instead of Celery's own format."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


@signals.before_task_publish.connect
def _carry_request_id(headers=None, **_):
    from workers.logs import current_request_id

    request_id = current_request_id()
    if headers is not None and request_id and REQUEST_ID_HEADER not in headers:
        headers[REQUEST_ID_HEADER] = request_id


_log_tokens: dict = {}


@signals.task_prerun.connect
def _task_log_context(task_id=None, task=None, args=None, kwargs=None, **_):
    """Every log line of a task carries its name, id, the request id and the ids it was given."""
    from workers.logs import context_set

    fields = {"task": task.name, "task_id": task_id}
    request_id = getattr(task.request, REQUEST_ID_HEADER, None) or (task.request.headers or {}).get(REQUEST_ID_HEADER)
    if request_id:
        fields["request_id"] = request_id
    try:
        bound = inspect.signature(task.run).bind_partial(*(args or ()), **(kwargs or {})).arguments
    except TypeError:
        bound = dict(kwargs or {})
    fields.update({name: value for name, value in bound.items() if name.endswith("_id")})
    _log_tokens[task_id] = context_set(fields)


@signals.task_postrun.connect
def _task_log_context_end(task_id=None, **_):
    from workers.logs import context_reset

    token = _log_tokens.pop(task_id, None)
    if token is not None:
        try:
            context_reset(token)
        except ValueError:  # set in another context (eager tasks inside a request); nothing to undo
            pass
