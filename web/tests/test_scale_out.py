"""Scale-out (compose.yaml, README "Containers"): two Celery workers and two celery-beat processes, real
processes on django-celery-beat's database scheduler, against one PostgreSQL database and one Redis
database, with the payout run and the sweepers due every 2 s. Exactly one beat is the deployment rule;
this shows what happens when two run anyway: every job is sent twice, and nothing is done twice.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from billing.models import WebhookEvent
from billing.stripe_gateway import connect as gateway
from billing.webhooks.processing import webhook_event_enqueue
from payouts import services
from payouts.models import Payout
from payouts.tests.conftest import account_updated_from_stripe
from payouts.tests.factories import ListenerPayoutFactory
from web.testing import WEBHOOK_PATH, _running_worker
from web.tests.factories import ListenerFactory
from web.tests.support import eventually
from workers.celery import QUEUES, app
from workers.schedules import SCHEDULES

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
LISTENERS = 4
EVERY_SECONDS = 2
# The jobs of workers.schedules that must never act twice, made due every EVERY_SECONDS.
FREQUENT = ("payouts.run_due", "payouts.sweep_stuck", "billing.payment_reconcile")


def _database_url() -> str:
    db = settings.DATABASES["default"]  # the test database, once pytest-django has created it
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _schedules_every_few_seconds() -> None:
    every, _ = IntervalSchedule.objects.get_or_create(every=EVERY_SECONDS, period=IntervalSchedule.SECONDS)
    for name, (task, _when, kwargs) in SCHEDULES.items():
        if task in FREQUENT and kwargs.get("schedule", "weekly") == "weekly":
            PeriodicTask.objects.create(name=name, task=task, kwargs=json.dumps(kwargs), interval=every)
    assert sorted(PeriodicTask.objects.values_list("task", flat=True)) == sorted(FREQUENT)


class Processes:
    """Child processes with their output in files (read by the assertions), stopped together."""

    def __init__(self, directory: Path, env: dict[str, str]):
        self.directory, self.env = directory, env
        self.running: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str) -> None:
        log = (self.directory / f"{name}.log").open("w")
        self.running[name] = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers", *args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def log(self, name: str) -> str:
        return (self.directory / f"{name}.log").read_text()

    def stop(self, *names: str, timeout: float = 20) -> None:
        for name in names:
            if self.running[name].poll() is None:
                self.running[name].send_signal(signal.SIGTERM)  # warm shutdown: finish the task in hand
        for name in names:
            try:
                self.running[name].wait(timeout)
            except subprocess.TimeoutExpired:
                self.running[name].kill()
                self.running[name].wait()


@pytest.fixture
def two_workers_two_beats(transactional_db, stripe_emulator, tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "STRIPE_API_BASE": settings.STRIPE_API_BASE,  # the emulator the session started
        "LOG_FORMAT": "plain",
        "LOG_LEVEL": "INFO",
        "WORKER_METRICS_PORT": "0",
        "CELERY_DB_REUSE_MAX": "0",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    processes = Processes(tmp_path, env)
    # The suite's own worker (web.testing, in this process) stops consuming meanwhile: only the two
    # workers started here take tasks from this Redis database.
    suite_workers = [worker.hostname for worker in _running_worker]
    for queue in QUEUES if suite_workers else ():
        app.control.cancel_consumer(queue, destination=suite_workers, reply=True, timeout=5)
    _queues_purge()
    try:
        yield processes
    finally:
        processes.stop(*processes.running)
        _queues_purge()
        for queue in QUEUES if suite_workers else ():
            app.control.add_consumer(queue, destination=suite_workers, reply=True, timeout=5)


def _queues_purge() -> None:
    with app.connection_for_write() as connection:
        for queue in QUEUES:
            connection.default_channel.queue_purge(queue)


def test_two_workers_and_two_beats_pay_each_listener_once_and_process_each_event_once(
    two_workers_two_beats, stripe_emulator, live_server
):
    processes = two_workers_two_beats
    # given Stripe's webhooks going to our endpoint, a funded platform balance, and listeners with an
    # onboarded Connect account and earnings payable in the last closed week
    stripe_emulator.register_webhook(live_server.url + WEBHOOK_PATH, secret=settings.STRIPE_WEBHOOK_SECRET)
    stripe_emulator.post("/_emulator/balance/topup", {"amount": 10_000_000, "currency": "usd"})
    listeners = []
    for _ in range(LISTENERS):
        listener = ListenerFactory()
        account = services.connect_account_get_or_create(listener=listener)
        stripe_emulator.post(f"/_emulator/accounts/{account.stripe_account_id}/onboard")
        account_updated_from_stripe(account.stripe_account_id)
        for days_ago in (10, 11):
            ListenerPayoutFactory(listener=listener, completed_at=timezone.now() - timedelta(days=days_ago))
        listeners.append(listener)
    owed = {listener.pk: sum(e.amount for e in listener.earnings.all()) for listener in listeners}
    # and the payout run and the sweepers due every 2 s
    _schedules_every_few_seconds()

    # when two workers consume every queue and two beats run the same schedule table
    queues = ",".join(QUEUES)
    for n in (1, 2):
        processes.start(f"worker{n}", "worker", "-Q", queues, "-c", "2", "-n", f"worker{n}@%h", "-l", "INFO")
        processes.start(f"beat{n}", "beat", "-S", "workers.beat:HeartbeatScheduler", "--pidfile=", "-l", "INFO")

    def every_beat_sent_the_payout_run_twice():
        """both beats sent payouts.run_due at least twice"""
        return all(processes.log(f"beat{n}").count("(payouts.run_due)") >= 2 for n in (1, 2))

    def all_paid():
        """every listener's payout paid"""
        return Payout.objects.filter(status=Payout.Status.PAID).count() == LISTENERS

    eventually(all_paid, timeout=40, interval=0.5)
    eventually(every_beat_sent_the_payout_run_twice, timeout=20, interval=0.5)

    # and Stripe redelivers every event twice more while the sweepers keep re-enqueuing what is pending
    # (every event the runs caused delivered and stored first: under load the deliveries lag the runs)
    stripe_emulator.flush_webhooks(timeout=30)
    events = list(WebhookEvent.objects.values_list("pk", flat=True))
    for pk in events * 2:
        webhook_event_enqueue(webhook_event_id=pk)
    processes.stop("beat1", "beat2")
    stripe_emulator.flush_webhooks()

    def all_events_done():
        """every stored webhook event processed (or ignored) and the queues empty"""
        with app.connection_for_read() as connection:
            client = connection.default_channel.client
            queued = sum(client.llen(queue) for queue in QUEUES)
        pending = WebhookEvent.objects.exclude(status__in=["processed", "ignored"]).count()
        return queued == 0 and pending == 0

    eventually(all_events_done, timeout=20, interval=0.5)
    processes.stop("worker1", "worker2")

    # then each scheduled job was sent by both beats, so executed about twice per period...
    run_due = [line for n in (1, 2) for line in processes.log(f"worker{n}").splitlines() if "run_due[" in line]
    executions = [line for line in run_due if " succeeded in " in line]
    assert len(executions) >= 4, "\n".join(run_due)
    assert not [line for line in run_due if " raised " in line]
    # ...yet each listener was paid once: one payout for the period, one transfer on Stripe, for what was owed
    payouts = list(Payout.objects.all())
    assert sorted(p.listener_id for p in payouts) == sorted(owed)
    assert {p.listener_id: p.amount for p in payouts} == owed
    assert len({(p.schedule, p.period_start) for p in payouts}) == 1
    paid_by_runs = sum(int(re.search(r"'paid': (\d+)", line)[1]) for line in executions)
    assert paid_by_runs == LISTENERS, "the runs' summaries count each payout paid once"
    transfers = list(gateway.transfers_list_all())
    destinations = Counter(t["destination"] for t in transfers)
    assert sorted(destinations.values()) == [1] * LISTENERS
    assert {t["id"] for t in transfers} == {p.stripe_transfer_id for p in payouts}
    # and each webhook event, delivered or enqueued three times over, was processed once
    assert len(events) >= LISTENERS  # at least the transfers' events
    # (a type no handler takes, such as transfer.created, is stored as ignored at intake: no attempt, and
    # the re-enqueued messages found it done)
    attempts = set(WebhookEvent.objects.values_list("status", "attempts"))
    assert attempts and attempts <= {("processed", 1), ("ignored", 1), ("ignored", 0)}, attempts
    # and the books agree with Stripe's
    call_command("ledger_check")
