"""`make chaos`: fault drills against a Talkpay stack of its own, with a modest concurrent load.

Local only and bounded (a few minutes). It starts, like `make run` but on ports of its own and with
nothing shared: PostgreSQL database `talkpay_chaos_stack` (dropped and created again), its own
redis-server (port 6391, append-only file in `.run/chaos/redis`), the Stripe emulator, gunicorn, the
two workers (main queues, `stripe` queue) and beat, each under `scripts.supervise`. Then, while
talkers book, pay and cancel, it runs the drills one after the other:

    worker-child-kill   kill -9 a prefork child of the main worker
    worker-kill         kill -9 the main worker (its unacknowledged messages are stranded)
    redis-freeze        SIGSTOP the broker for a few seconds, then SIGCONT
    redis-kill          kill -9 the broker (restarted by its supervisor, the AOF keeps the queues)
    redis-restart       SIGTERM the broker (a clean restart)
    gunicorn-kill       kill -9 gunicorn workers mid-request (clients retry with their Idempotency-Key)
    db-terminate        pg_terminate_backend of every connection to this stack's database (only it)
    stripe-faults       the emulator answers 500, 429 and hangs on PaymentIntents and refunds
    payout-runs         three payout runs at once for the same period

After each drill it waits until nothing is left in flight and checks: no duplicate Stripe object
(PaymentIntent per payment, customer per talker, refund per refund row, transfer per payout), every
booking a client was told about is present, every retried Idempotency-Key was answered (201/202 with
the first booking) within 10 s, every stranded event and payment processed within 2 minutes, no booking
cancelled while its payment's event was unprocessed, no deadlock (pg_stat_database.deadlocks), a clean
`ledger_check`, and our totals equal to Stripe's. It prints each drill's recovery time: from the start of
the fault until nothing was in flight (the fault's own duration included, printed beside it). Exit
status 1 when any check failed.

Time is compressed by default (sweepers every 10 s, 10 s grace) so the whole run stays under 6 minutes;
`--real-cadence` keeps the production cadence (sweepers every minute, 60 s grace), and takes longer.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import requests

from scripts.services import RUN_DIR, reachable, redis_command

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHAOS_DIR = RUN_DIR / "chaos"
DB_NAME = "talkpay_chaos_stack"
ADMIN_DSN = os.environ.get("CHAOS_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
PORTS = {"WEB_PORT": 8130, "FLOWER_PORT": 5630, "WORKER_METRICS_PORT": 9830, "STRIPE_EMULATOR_PORT": 12130}
REDIS_PORT = 6391
WEBHOOK_SECRET = "whsec_chaos_" + uuid.uuid4().hex
PUBLISHABLE_KEY = "pk_test_talkpay_emulator"
SECRET_KEY = "sk_test_talkpay_emulator"
TALKERS, LISTENERS, CLIENTS = 8, 4, 4
RECOVERY_LIMIT_SECONDS = 120.0
RETRY_ANSWER_LIMIT_SECONDS = 10.0


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- The stack ---------------------------------------------------------------------------------------


def stack_env(real_cadence: bool) -> dict[str, str]:
    env = {
        **os.environ,
        **{name: str(port) for name, port in PORTS.items()},
        "DJANGO_SETTINGS_MODULE": "web.settings",
        "DJANGO_DEBUG": "true",
        "TALKPAY_IGNORE_RUN_ENV": "true",  # never the `make run` stack's .run/env
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
        "REDIS_URL": f"redis://127.0.0.1:{REDIS_PORT}/0",
        "STRIPE_API_BASE": f"http://127.0.0.1:{PORTS['STRIPE_EMULATOR_PORT']}",
        "STRIPE_SECRET_KEY": SECRET_KEY,
        "STRIPE_PUBLISHABLE_KEY": PUBLISHABLE_KEY,
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{PORTS['WEB_PORT']}",
        "LOG_LEVEL": "WARNING",
        "API_THROTTLE_USER": "1000000/min",
        "API_THROTTLE_ANON": "1000000/min",
        "API_THROTTLE_AUTH": "1000000/min",
        "API_THROTTLE_BOOKING_CREATE": "1000000/min",
        "BOOKING_PENDING_MAX_PER_TALKER": "1000",
        "BOOKING_PENDING_EXPIRY_MINUTES": "2",  # unpaid bookings do expire during the run
        "PAYOUT_HOLD_HOURS": "0",
        "PAYOUT_MINIMUM_CENTS": "100",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_THREADS": "8",
        "GUNICORN_GRACEFUL_TIMEOUT": "5",
        "PROMETHEUS_MULTIPROC_DIR": str(CHAOS_DIR / "prometheus" / "web"),
    }
    if not real_cadence:
        env.update(
            {
                "WEBHOOK_SWEEP_AFTER_SECONDS": "10",
                "OUTBOX_RESEND_AFTER_SECONDS": "10",
                "PAYOUT_RESEND_AFTER_SECONDS": "20",  # above one transfer call (2 x 8 s)
            }
        )
    return env


@dataclass
class Process:
    name: str
    supervisor: subprocess.Popen
    log_path: Path

    def child_pid(self) -> int | None:
        """The supervised process (the supervisor's only child)."""
        children = _children(self.supervisor.pid)
        return children[0] if children else None


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class Stack:
    def __init__(self, real_cadence: bool):
        self.env = stack_env(real_cadence)
        self.real_cadence = real_cadence
        self.processes: dict[str, Process] = {}
        self.web = f"http://127.0.0.1:{PORTS['WEB_PORT']}"
        self.emulator = self.env["STRIPE_API_BASE"]

    def check_ports_free(self) -> None:
        taken = [port for port in (*PORTS.values(), REDIS_PORT) if reachable("127.0.0.1", port)]
        if taken:
            raise SystemExit(f"ports in use: {taken}; is another `make chaos` running?")

    def database_fresh(self) -> None:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            # FORCE ends the connections of this database only (a previous run's leftovers).
            conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')

    def manage(self, *args: str, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            env=self.env,
            cwd=ROOT,
            check=check,
            capture_output=capture,
            text=True,
        )

    def prepare(self) -> None:
        shutil.rmtree(CHAOS_DIR, ignore_errors=True)
        (CHAOS_DIR / "logs").mkdir(parents=True)
        (CHAOS_DIR / "prometheus" / "worker").mkdir(parents=True)
        self.database_fresh()
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("seed_demo", "--no-users")
        self.manage("setup_schedules")
        if not self.real_cadence:
            self._compress_schedules()

    def _compress_schedules(self, every: int = 10) -> None:
        """Sweepers every 10 s instead of every minute: the same code, on a shorter clock."""
        with psycopg.connect(self.env["DATABASE_URL"].replace("postgres://", "postgresql://"), autocommit=True) as conn:
            conn.execute(
                "INSERT INTO django_celery_beat_intervalschedule (every, period) VALUES (%s, 'seconds')"
                " ON CONFLICT DO NOTHING",
                [every],
            )
            (interval_id,) = conn.execute(
                "SELECT id FROM django_celery_beat_intervalschedule WHERE every = %s AND period = 'seconds'", [every]
            ).fetchone()
            conn.execute(
                "UPDATE django_celery_beat_periodictask SET interval_id = %s WHERE interval_id IN"
                " (SELECT id FROM django_celery_beat_intervalschedule WHERE period = 'seconds' AND every <= 300)",
                [interval_id],
            )

    def commands(self) -> dict[str, tuple[list[str], dict[str, str]]]:
        celery = str(BIN / "celery")
        worker_env = {**self.env, "PROMETHEUS_MULTIPROC_DIR": str(CHAOS_DIR / "prometheus" / "worker")}
        webhook_url = f"{self.web}/api/payment/stripe/webhook/"
        return {
            "redis": (redis_command(REDIS_PORT, CHAOS_DIR / "redis", persistent=True), self.env),
            "stripe-emulator": (
                [sys.executable, "-m", "stripe_emulator", "--port", str(PORTS["STRIPE_EMULATOR_PORT"]), "--quiet"]
                + ["--webhook-url", webhook_url, "--webhook-secret", WEBHOOK_SECRET],
                self.env,
            ),
            "web": ([str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py")], self.env),
            "worker": (
                [celery, "-A", "workers", "worker", "-l", "WARNING", "-Q", "payments,webhooks,payouts,maintenance"]
                + ["--concurrency", "2", "-n", "chaos-worker@%h"],
                worker_env,
            ),
            "worker-stripe": (
                [celery, "-A", "workers", "worker", "-l", "WARNING", "-Q", "stripe", "--concurrency", "2"]
                + ["-n", "chaos-stripe@%h"],
                {**worker_env, "WORKER_METRICS_PORT": "0"},
            ),
            "beat": (
                [celery, "-A", "workers", "beat", "-l", "WARNING", "-S", "workers.beat:HeartbeatScheduler"]
                + ["--pidfile=", "-s", str(CHAOS_DIR / "beat-schedule")],
                self.env,
            ),
        }

    def start(self) -> None:
        for name, (command, env) in self.commands().items():
            log_path = CHAOS_DIR / "logs" / f"{name}.log"
            handle = log_path.open("w")
            supervisor = subprocess.Popen(
                [sys.executable, "-m", "scripts.supervise", name, "--", *command],
                env=env,
                cwd=ROOT,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped together, by this group's id
            )
            self.processes[name] = Process(name, supervisor, log_path)
            if name == "redis":
                _wait(lambda: reachable("127.0.0.1", REDIS_PORT), 15, "redis")
            if name == "stripe-emulator":
                _wait(lambda: _http_ok(f"{self.emulator}/_emulator/health"), 30, "the emulator")
        _wait(lambda: _http_ok(f"{self.web}/api/health/"), 60, "the web")
        _wait(lambda: _http_ok(f"{self.web}/api/health/ready/"), 90, "a worker heartbeat (readiness)")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.supervisor.poll() is None:
                process.supervisor.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self.processes.values():
            try:
                process.supervisor.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for process in self.processes.values():
            try:
                os.killpg(process.supervisor.pid, signal.SIGKILL)  # this run's own group only
            except ProcessLookupError:
                pass

    def pid(self, name: str) -> int:
        pid = self.processes[name].child_pid()
        if pid is None:
            raise RuntimeError(f"{name} is not running")
        return pid


def _http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _wait(condition, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


# --- Users and the load --------------------------------------------------------------------------------

CREATE_USERS = """
import json
from web.models import User
from web.tokens import UserRefreshToken
out = {"talkers": [], "listeners": []}
for role, count in (("talker", %d), ("listener", %d)):
    for n in range(count):
        user = User.objects.create(username=f"chaos-{role}-{n}", email=f"{role}{n}@chaos.example", role=role)
        user.set_unusable_password(); user.save(update_fields=["password"])
        out[role + "s"].append({"id": user.pk, "token": str(UserRefreshToken.for_user(user).access_token)})
print("USERS" + json.dumps(out))
"""


@dataclass
class Attempt:
    key: str
    started: float
    first_failure: float | None = None
    answered: float | None = None
    booking_id: int | None = None
    status: int | None = None
    failures: list[str] = field(default_factory=list)


class Load:
    """Talkers booking (with an Idempotency-Key, retried until answered), paying on the emulator as
    Stripe.js would, and cancelling some; every answer the client got is recorded for the checks."""

    def __init__(self, stack: Stack, users: dict):
        self.stack = stack
        self.talkers = users["talkers"]
        self.listeners = users["listeners"]
        self.lock = threading.Lock()
        self.attempts: list[Attempt] = []
        self.acknowledged: dict[int, str] = {}  # booking id -> Idempotency-Key
        self.paid_intents: set[str] = set()
        self.slot = 0
        self.running = threading.Event()
        self.stopped = threading.Event()
        self.threads: list[threading.Thread] = []
        self.booking_latencies: list[tuple[float, float]] = []  # (when, seconds)

    def start(self) -> None:
        self.running.set()
        for n in range(CLIENTS):
            thread = threading.Thread(target=self._client, args=(n,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def pause(self) -> None:
        self.running.clear()

    def resume(self) -> None:
        self.running.set()

    def stop(self) -> None:
        self.stopped.set()
        self.running.set()
        for thread in self.threads:
            thread.join(timeout=90)

    def _next_slot(self) -> tuple[dict, datetime]:
        with self.lock:
            self.slot += 1
            n = self.slot
        listener = self.listeners[n % len(self.listeners)]
        # Distinct, non-overlapping slots per listener; every third one within a day, so a talker's
        # cancellation keeps part for the listener (payable: the payout drill's material).
        hours = 2 + (n // len(self.listeners)) if n % 3 == 0 else 30 + (n // len(self.listeners))
        return listener, datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=hours)

    def _client(self, n: int) -> None:
        rng = random.Random(n)
        session = requests.Session()
        while not self.stopped.is_set():
            self.running.wait()
            if self.stopped.is_set():
                return
            talker = self.talkers[rng.randrange(len(self.talkers))]
            try:
                self._one_booking(session, talker, rng)
            except Exception as error:  # the load must go on; the checks judge the outcome
                log(f"client {n}: {type(error).__name__}: {error}")
            time.sleep(rng.uniform(0.1, 0.4))

    def _headers(self, token: str, key: str | None = None) -> dict:
        headers = {"Authorization": f"Bearer {token}"}
        if key:
            headers["Idempotency-Key"] = key
        return headers

    def _one_booking(self, session: requests.Session, talker: dict, rng: random.Random) -> None:
        listener, scheduled_at = self._next_slot()
        body = {
            "listener_id": listener["id"],
            "package_id": 1,
            "scheduled_at": scheduled_at.isoformat(),
            "notes": "chaos",
        }
        attempt = Attempt(key=f"chaos-{uuid.uuid4().hex}", started=time.monotonic())
        with self.lock:
            self.attempts.append(attempt)
        answer = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not self.stopped.is_set():
            sent = time.monotonic()
            try:
                response = session.post(
                    f"{self.stack.web}/api/payment/bookings/create_booking/",
                    json=body,
                    headers=self._headers(talker["token"], attempt.key),
                    timeout=15,
                )
                with self.lock:
                    self.booking_latencies.append((sent, time.monotonic() - sent))
                if response.status_code in (201, 202):
                    answer = response.json()
                    break
                if response.status_code < 500 and response.status_code != 409:
                    attempt.status = response.status_code
                    attempt.failures.append(f"{response.status_code} {response.text[:200]}")
                    return
                reason = f"{response.status_code} {response.json().get('error', {}).get('code', '')}"
            except (requests.RequestException, ValueError) as error:
                reason = type(error).__name__
            attempt.failures.append(reason)
            attempt.first_failure = attempt.first_failure or time.monotonic()
            time.sleep(0.5)
        if answer is None:
            return
        attempt.answered = time.monotonic()
        attempt.status = 201
        booking_id = answer["booking"]["id"]
        attempt.booking_id = booking_id
        with self.lock:
            self.acknowledged[booking_id] = attempt.key
        if rng.random() < 0.12:
            return  # abandoned checkout: left unpaid, it expires
        secret, intent = self._client_secret(session, talker, answer)
        if not secret:
            return
        confirmed = self._confirm(intent, secret)
        if confirmed and rng.random() < 0.3:
            self._cancel_when_confirmed(session, talker, booking_id)

    def _client_secret(self, session, talker, answer) -> tuple[str | None, str | None]:
        payment = answer.get("payment") or {}
        deadline = time.monotonic() + 60
        while not payment.get("client_secret") and time.monotonic() < deadline and not self.stopped.is_set():
            time.sleep(0.5)
            try:
                polled = session.get(
                    f"{self.stack.web}/api/payment/bookings/{answer['booking']['id']}/",
                    headers=self._headers(talker["token"]),
                    timeout=10,
                )
                if polled.status_code == 200:
                    payment = polled.json().get("payment") or {}
            except requests.RequestException:
                pass
        return payment.get("client_secret"), payment.get("payment_intent_id")

    def _confirm(self, intent: str | None, secret: str) -> bool:
        """What Stripe.js does with the client secret (the emulator accepts the publishable key)."""
        for _ in range(20):
            try:
                response = requests.post(
                    f"{self.stack.emulator}/v1/payment_intents/{intent}/confirm",
                    auth=(PUBLISHABLE_KEY, ""),
                    data={"client_secret": secret, "payment_method": "pm_card_visa"},
                    timeout=15,
                )
            except requests.RequestException:
                time.sleep(0.5)
                continue
            if response.status_code == 200 and response.json().get("status") == "succeeded":
                with self.lock:
                    self.paid_intents.add(intent or "")
                return True
            if response.status_code < 500 and response.status_code != 429:
                return False
            time.sleep(0.5)
        return False

    def _cancel_when_confirmed(self, session, talker, booking_id: int) -> None:
        url = f"{self.stack.web}/api/payment/bookings/{booking_id}/"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not self.stopped.is_set():
            try:
                if (
                    session.get(url, headers=self._headers(talker["token"]), timeout=10).json().get("status")
                    == "confirmed"
                ):
                    break
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.5)
        for _ in range(10):
            try:
                response = session.post(
                    url + "cancel/", json={"reason": "chaos"}, headers=self._headers(talker["token"]), timeout=15
                )
                if response.status_code < 500:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)


# --- What must hold after each drill -------------------------------------------------------------------


class Books:
    """Reads of this stack's database (PostgreSQL, plain SQL) and of the emulator (Stripe's API)."""

    def __init__(self, stack: Stack):
        self.stack = stack
        self.dsn = stack.env["DATABASE_URL"].replace("postgres://", "postgresql://")

    def _conn(self):
        return psycopg.connect(self.dsn, autocommit=True, application_name="chaos-checks")

    def query(self, sql: str, params=()) -> list[tuple]:
        for attempt in range(3):  # this connection may be one the db-terminate drill just ended
            try:
                with self._conn() as conn:
                    return conn.execute(sql, params).fetchall()
            except psycopg.OperationalError:
                if attempt == 2:
                    raise
                time.sleep(0.5)
        return []

    def deadlocks(self) -> int:
        return self.query("SELECT deadlocks FROM pg_stat_database WHERE datname = %s", [DB_NAME])[0][0]

    def in_flight(self, paid_intents: set[str]) -> dict[str, int]:
        """Work recorded but not finished; zero everywhere means the stack has recovered."""
        counts = {
            "webhook events pending": "SELECT count(*) FROM billing_webhookevent WHERE status = 'pending'",
            "payments waiting for an intent": "SELECT count(*) FROM billing_payment p JOIN booking_booking b"
            " ON b.id = p.booking_id WHERE p.status = 'awaiting_intent' AND b.status = 'pending'",
            "intent cancels requested": "SELECT count(*) FROM billing_payment WHERE intent_cancel_requested_at"
            " IS NOT NULL",
            "refunds not settled": "SELECT count(*) FROM billing_refund WHERE status IN ('pending', 'requested')",
            "payouts in flight": "SELECT count(*) FROM payouts_payout WHERE status IN ('pending', 'processing')",
            "clawbacks pending": "SELECT count(*) FROM billing_clawback WHERE status = 'pending'",
        }
        result = {name: self.query(sql)[0][0] for name, sql in counts.items()}
        if paid_intents:
            succeeded = {
                row[0]
                for row in self.query(
                    "SELECT stripe_payment_intent_id FROM billing_payment WHERE status = 'succeeded'"
                    " AND stripe_payment_intent_id = ANY(%s)",
                    [list(paid_intents)],
                )
            }
            result["paid on Stripe, not succeeded here"] = len(paid_intents - succeeded)
        return {name: count for name, count in result.items() if count}

    def stripe_list(self, resource: str) -> list[dict]:
        items: list[dict] = []
        params: dict = {"limit": 100}
        while True:
            response = requests.get(
                f"{self.stack.emulator}/v1/{resource}", params=params, auth=(SECRET_KEY, ""), timeout=30
            )
            response.raise_for_status()
            page = response.json()
            items += page["data"]
            if not page.get("has_more") or not page["data"]:
                return items
            params["starting_after"] = page["data"][-1]["id"]


@dataclass
class DrillResult:
    name: str
    recovery_seconds: float | None
    problems: list[str]
    note: str = ""


def check_all(books: Books, load: Load, deadlocks_before: int, since: float) -> list[str]:
    problems: list[str] = []
    # Duplicates on Stripe: one object per row of ours, keyed by the ids in their metadata.
    intents = books.stripe_list("payment_intents")
    for key, label in ((("payment_id",), "PaymentIntents"),):
        dupes = [k for k, n in Counter(i["metadata"].get(key[0]) for i in intents).items() if n > 1]
        if dupes:
            problems.append(f"duplicate {label} for payment ids {dupes[:5]}")
    customers = books.stripe_list("customers")
    dupes = [k for k, n in Counter(c["metadata"].get("user_id") for c in customers).items() if n > 1]
    if dupes:
        problems.append(f"duplicate customers for users {dupes[:5]}")
    refunds = books.stripe_list("refunds")
    dupes = [k for k, n in Counter(r["metadata"].get("refund_id") for r in refunds).items() if n > 1]
    if dupes:
        problems.append(f"duplicate refunds for refund ids {dupes[:5]}")
    transfers = books.stripe_list("transfers")
    dupes = [k for k, n in Counter(t["metadata"].get("payout_id") for t in transfers).items() if n > 1]
    if dupes:
        problems.append(f"duplicate transfers for payouts {dupes[:5]}")

    # Every booking a client was answered about exists.
    with load.lock:
        acknowledged = dict(load.acknowledged)
        attempts = list(load.attempts)
        paid = set(load.paid_intents)
    present = {row[0] for row in books.query("SELECT id FROM booking_booking WHERE id = ANY(%s)", [list(acknowledged)])}
    missing = set(acknowledged) - present
    if missing:
        problems.append(f"{len(missing)} acknowledged bookings missing: {sorted(missing)[:5]}")
    # Every retried Idempotency-Key answered, with the booking of its key, within 10 s of its first failure.
    by_key = dict(books.query("SELECT key, response_body FROM web_idempotencyrecord"))
    for attempt in attempts:
        if attempt.first_failure is None or attempt.started < since:
            continue
        if attempt.answered is None:
            if attempt.status is None or attempt.status >= 500:
                problems.append(f"key {attempt.key} never answered: {attempt.failures[-3:]}")
            continue
        waited = attempt.answered - attempt.first_failure
        if waited > RETRY_ANSWER_LIMIT_SECONDS:
            problems.append(f"key {attempt.key} answered {waited:.1f} s after its first failure {attempt.failures[:3]}")
        stored = (by_key.get(attempt.key) or {}).get("booking", {}).get("id")
        if stored != attempt.booking_id:
            problems.append(f"key {attempt.key} answered booking {attempt.booking_id}, its record says {stored}")

    # Nothing cancelled by the system while an event about its payment waited.
    early = books.query(
        "SELECT b.id FROM booking_booking b JOIN billing_payment p ON p.booking_id = b.id"
        " JOIN billing_webhookevent e ON e.payload->'data'->'object'->>'id' = p.stripe_payment_intent_id"
        " WHERE b.status = 'cancelled' AND b.cancelled_by_id IS NULL AND e.received_at < b.cancelled_at"
        " AND e.type = 'payment_intent.succeeded' AND (e.processed_at IS NULL OR e.processed_at > b.cancelled_at)"
    )
    if early:
        problems.append(f"bookings cancelled while their payment's event was unprocessed: {[r[0] for r in early][:5]}")

    deadlocks = books.deadlocks() - deadlocks_before
    if deadlocks:
        problems.append(f"{deadlocks} deadlock(s) in {DB_NAME} (pg_stat_database)")

    # Our totals against Stripe's.
    ours = dict(
        books.query(
            "SELECT 'payments', coalesce(sum(amount), 0) FROM billing_payment WHERE status = 'succeeded'"
            " UNION ALL SELECT 'refunds', coalesce(sum(amount), 0) FROM billing_refund WHERE status = 'succeeded'"
            " UNION ALL SELECT 'transfers', coalesce(sum(amount), 0) FROM payouts_payout WHERE status = 'paid'"
        )
    )
    ours_ids = {row[0] for row in books.query("SELECT stripe_payment_intent_id FROM billing_payment")}
    theirs = {
        "payments": sum(i["amount_received"] for i in intents if i["status"] == "succeeded" and i["id"] in ours_ids),
        "refunds": sum(r["amount"] for r in refunds if r["status"] == "succeeded"),
        "transfers": sum(t["amount"] - t.get("amount_reversed", 0) for t in transfers),
    }
    for name, value in theirs.items():
        if int(ours.get(name, 0)) != value:
            problems.append(f"{name}: ours {ours.get(name, 0)}, Stripe's {value}")
    unpaid_here = paid - {row[0] for row in books.query("SELECT stripe_payment_intent_id FROM billing_payment")}
    if unpaid_here:
        problems.append(f"{len(unpaid_here)} intents paid on Stripe are not ours")

    ledger = books.stack.manage("ledger_check", check=False, capture=True)
    if ledger.returncode != 0:
        failing = [line for line in ledger.stdout.splitlines() if line.startswith(("FAIL", "  -"))]
        problems.append("ledger_check: " + "; ".join(failing[:6]) + (ledger.stderr[-300:] if not failing else ""))
    return problems


def wait_recovered(books: Books, load: Load, started: float, limit: float = RECOVERY_LIMIT_SECONDS):
    """Seconds from `started` until nothing is in flight, or None (and what is left) after `limit`."""
    left: dict[str, int] = {}
    while time.monotonic() - started < limit:
        with load.lock:
            paid = set(load.paid_intents)
        try:
            left = books.in_flight(paid)
        except psycopg.Error as error:
            left = {f"database: {error}": 1}
        if not left:
            return time.monotonic() - started, {}
        time.sleep(0.5)
    return None, left


# --- The drills ----------------------------------------------------------------------------------------


def _kill(pid: int, sig: signal.Signals = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def drill_worker_child_kill(stack: Stack, books: Books) -> str:
    main = stack.pid("worker")
    children = _children(main)
    for child in children[:2]:
        _kill(child)
    return f"killed pool children {children[:2]} of worker {main}"


def drill_worker_kill(stack: Stack, books: Books) -> str:
    main = stack.pid("worker")
    stripe_main = stack.pid("worker-stripe")
    _kill(main)
    _kill(stripe_main)
    return f"killed workers {main} and {stripe_main} (supervisors restart them)"


def drill_redis_freeze(stack: Stack, books: Books, seconds: float = 6.0) -> str:
    pid = stack.pid("redis")
    _kill(pid, signal.SIGSTOP)
    time.sleep(seconds)
    _kill(pid, signal.SIGCONT)
    return f"redis frozen {seconds:.0f} s"


def drill_redis_kill(stack: Stack, books: Books) -> str:
    _kill(stack.pid("redis"))
    time.sleep(4)  # the supervisor restarts it after its backoff
    return "redis killed -9"


def drill_redis_restart(stack: Stack, books: Books) -> str:
    _kill(stack.pid("redis"), signal.SIGTERM)
    time.sleep(4)
    return "redis stopped cleanly and restarted"


def drill_gunicorn_kill(stack: Stack, books: Books) -> str:
    killed = []
    for _ in range(3):
        workers = _children(stack.pid("web"))
        if workers:
            victim = random.choice(workers)
            _kill(victim)
            killed.append(victim)
        time.sleep(2.5)
    return f"killed gunicorn workers {killed}"


def drill_db_terminate(stack: Stack, books: Books) -> str:
    ended = 0
    for _ in range(3):
        rows = books.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [DB_NAME],
        )
        ended += len(rows)
        time.sleep(2)
    return f"terminated {ended} connections to {DB_NAME}"


def drill_stripe_faults(stack: Stack, books: Books) -> str:
    def fault(**payload):
        requests.post(f"{stack.emulator}/_emulator/faults", json=payload, timeout=5).raise_for_status()

    fault(mode="500", count=6, path_prefix="/v1/payment_intents")
    fault(mode="429", count=6, path_prefix="/v1/payment_intents")
    fault(mode="hang", count=2, path_prefix="/v1/payment_intents", seconds=12)
    fault(mode="500", count=3, path_prefix="/v1/refunds")
    fault(mode="hang", count=1, path_prefix="/v1/refunds", seconds=12)
    time.sleep(8)
    return "500 x6, 429 x6, hang x2 (12 s) on PaymentIntents; 500 x3, hang x1 on refunds"


def drill_payout_runs(stack: Stack, books: Books) -> str:
    runs = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "run_payouts", "--schedule", "weekly"]
            + ["--period", "current", "--allow-open"],
            env=stack.env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [run.communicate(timeout=120)[0].strip().splitlines()[-1:] for run in runs]
    payable = books.query("SELECT count(*) FROM payouts_payout")[0][0]
    return f"3 concurrent payout runs ({payable} payouts): {[o[0][:80] if o else '' for o in outputs]}"


DRILLS = [
    ("worker-child-kill", drill_worker_child_kill),
    ("worker-kill", drill_worker_kill),
    ("redis-freeze", drill_redis_freeze),
    ("redis-kill", drill_redis_kill),
    ("redis-restart", drill_redis_restart),
    ("gunicorn-kill", drill_gunicorn_kill),
    ("db-terminate", drill_db_terminate),
    ("stripe-faults", drill_stripe_faults),
    ("payout-runs", drill_payout_runs),
]


def onboard_listeners(stack: Stack, users: dict) -> None:
    """Each listener opens its Connect onboarding link (the emulator completes it and emits account.updated)."""
    for listener in users["listeners"]:
        link = requests.post(
            f"{stack.web}/api/payment/connect/onboarding/",
            headers={"Authorization": f"Bearer {listener['token']}"},
            timeout=30,
        )
        link.raise_for_status()
        requests.get(link.json()["url"], timeout=30)
    requests.post(f"{stack.emulator}/_emulator/balance/topup", json={"amount": 50_000_000}, timeout=10)


def run(args) -> int:
    stack = Stack(real_cadence=args.real_cadence)
    stack.check_ports_free()
    started = time.monotonic()
    results: list[DrillResult] = []
    load: Load | None = None
    try:
        log(f"preparing {DB_NAME} and .run/chaos/ (ports {PORTS}, redis {REDIS_PORT})")
        stack.prepare()
        stack.start()
        output = stack.manage("shell", "-c", CREATE_USERS % (TALKERS, LISTENERS), capture=True).stdout
        users = json.loads(output.split("USERS", 1)[1])
        onboard_listeners(stack, users)
        books = Books(stack)
        log(f"stack up in {time.monotonic() - started:.0f} s; load: {CLIENTS} clients, {TALKERS} talkers")
        load = Load(stack, users)
        load.start()
        time.sleep(args.warmup)
        selected = [d for d in DRILLS if not args.only or d[0] in args.only]
        for name, drill in selected:
            deadlocks_before = books.deadlocks()
            load.resume()
            time.sleep(args.load_seconds / 2)
            fault_at = time.monotonic()
            note = drill(stack, books)
            note += f"; fault lasted {time.monotonic() - fault_at:.1f} s"
            load.pause()  # clients finish what they started; the stack must drain on its own
            recovery, left = wait_recovered(books, load, fault_at)
            problems = check_all(books, load, deadlocks_before, since=fault_at - args.load_seconds)
            if recovery is None:
                problems.insert(0, f"not recovered within {RECOVERY_LIMIT_SECONDS:.0f} s: {left}")
            results.append(DrillResult(name, recovery, problems, note))
            status = "ok" if not problems else "FAIL"
            shown = f"{recovery:.1f} s" if recovery is not None else "never"
            log(f"{status:4} {name:18} recovered in {shown:>7} ({note})")
            for problem in problems:
                log(f"       - {problem}")
        load.stop()
    finally:
        if load is not None:
            load.stopped.set()
            load.running.set()
        stack.stop()
    return report(results, load, started)


def report(results: list[DrillResult], load: Load | None, started: float) -> int:
    print("\nDrill                recovery   result")
    for result in results:
        shown = f"{result.recovery_seconds:6.1f} s" if result.recovery_seconds is not None else "   never"
        print(f"{result.name:20} {shown}   {'ok' if not result.problems else 'FAIL: ' + result.problems[0][:90]}")
    if load is not None:
        answered = [a for a in load.attempts if a.answered is not None]
        retried = [a for a in answered if a.first_failure is not None]
        latencies = sorted(seconds for _, seconds in load.booking_latencies)
        p = (lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]) if latencies else (lambda q: 0.0)
        print(
            f"\nbookings acknowledged {len(load.acknowledged)}, paid {len(load.paid_intents)}, "
            f"retried keys {len(retried)} (longest wait "
            f"{max((a.answered - a.first_failure for a in retried), default=0):.1f} s); "
            f"booking request p50 {p(0.5):.2f} s, p99 {p(0.99):.2f} s, max {p(1.0):.2f} s"
        )
    print(f"whole run {time.monotonic() - started:.0f} s; logs in {CHAOS_DIR / 'logs'}")
    failed = [r.name for r in results if r.problems]
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    print("every drill recovered and every check held")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real-cadence", action="store_true", help="production sweeper cadence (slower)")
    parser.add_argument("--only", nargs="*", help="run only these drills", choices=[name for name, _ in DRILLS])
    parser.add_argument("--load-seconds", type=float, default=10.0, help="load around each fault")
    parser.add_argument("--warmup", type=float, default=5.0)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
