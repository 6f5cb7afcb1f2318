"""Benchmark the Stripe webhook path against a bare baseline, both served production-style.

    python bench/webhook_bench.py [--seconds 3] [--rounds 3] [--connections 32] [--events 2000]
        [--e2e-rounds 2] [--pool prefork|threads] [--worker-concurrency 2] [--profile 200] [--skip-intake]
        [--cpu-compare 600] [--port-base 22000]

1. Intake: gunicorn (gthread) serves the real endpoint and, in the same run, the bare baseline of
   `bench/webhook_bare.py` (verify an HMAC, insert one row, enqueue on commit). Keep-alive clients
   post distinct, signed `payment_intent.succeeded` events as fast as they are answered; the script
   prints requests/s and p50/p99 latency of each, and the ratio.
2. End to end: with a Celery worker on the webhooks queue (`--pool`, `--worker-concurrency`), the same
   clients deliver one succeeded event per seeded payment; the script prints events processed per
   second, from the first delivery until every event is processed (payment succeeded, split booked,
   earning created), and the same for the bare pipeline (the baseline view plus a task taking two row
   locks), in alternating rounds (`--e2e-rounds`), with the worker's CPU per event. Each seeded payment
   has a real, paid PaymentIntent on a Stripe emulator: the handler reads every intent from Stripe
   before applying it (one retrieve per event), and so does the bare task, so they compare like with like.
3. `manage.py ledger_check` must pass afterwards (against the same emulator, which holds the charges).

`--profile N` first processes N events in this process under cProfile and prints queries, transactions
and Stripe calls per event and where the time went (BENCH_SHOW_SQL=1 also prints one event's SQL).
`--cpu-compare N` processes N events through Talkpay's handler and N through the bare task in this
process, in alternating blocks, without a profiler, and prints the CPU per event of each: this process's
and its PostgreSQL backend's (no broker, no web: what the two workers' tasks cost, side by side).

Everything runs on a scratch PostgreSQL database and a Redis database of its own, which the script
creates and drops: DATABASE_URL's server (default 127.0.0.1:5432) and BENCH_REDIS_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = os.environ.get("BENCH_DATABASE", "talkpay_bench_webhooks")
SERVER = os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432")
DATABASE_URL = f"{SERVER}/{BENCH_DB}"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
SECRET = "whsec_benchwebhooks0123456789"
PYTHON = sys.executable
BIN = Path(PYTHON).parent
# The Stripe emulator every process of the run talks to (set by main()).
STRIPE_API_BASE = ""


def _env(**extra) -> dict:
    from web.secrets import throwaway_production_env

    env = {**throwaway_production_env(), **os.environ}
    env.update(
        DATABASE_URL=DATABASE_URL,
        REDIS_URL=REDIS_URL,
        STRIPE_WEBHOOK_SECRET=SECRET,
        DJANGO_SETTINGS_MODULE="web.settings",
        API_THROTTLE_WEBHOOK="100000000/min",
        LOG_LEVEL="WARNING",
        PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'bench'}",
    )
    if STRIPE_API_BASE:
        env["STRIPE_API_BASE"] = STRIPE_API_BASE
    env.update(extra)
    return env


# `--port-base N`: the servers of the run take free ports from N up (a range of the caller's own on a
# shared machine) instead of ports the system picks.
PORT_BASE = 0
_next_port = [0]


def _free_port() -> int:
    import socket

    if not PORT_BASE:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return sock.getsockname()[1]
    for port in range(max(_next_port[0], PORT_BASE), PORT_BASE + 1000):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _next_port[0] = port + 1
        return port
    raise RuntimeError(f"no free port in {PORT_BASE}-{PORT_BASE + 999}")


def _psql(sql: str) -> None:
    subprocess.run(["psql", f"{SERVER}/postgres", "-qc", sql], check=True, capture_output=True)


def setup_database() -> None:
    _psql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    _psql(f"CREATE DATABASE {BENCH_DB}")
    subprocess.run([PYTHON, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=_env(), check=True)


def django_setup() -> None:
    os.environ.update(_env())
    import django

    django.setup()


def _paid_intents(payments: list, customer_id: str) -> list[dict]:
    """One PaymentIntent per payment on the emulator, as our worker creates it (customer, metadata),
    paid with a test card. Returned as Stripe holds them, in the order of `payments`."""
    from concurrent.futures import ThreadPoolExecutor

    from billing import stripe_gateway

    def create(payment) -> dict:
        intent = stripe_gateway.call(
            stripe_gateway.client().v1.payment_intents.create,
            params={
                "amount": payment.amount,
                "currency": payment.currency,
                "customer": customer_id,
                "allowed_payment_method_types": ["card"],
                "payment_method": "pm_card_visa",
                "confirm": True,
                "metadata": {
                    "booking_id": str(payment.booking_id),
                    "payment_id": str(payment.pk),
                    "app_fee": str(payment.app_fee),
                },
            },
        )
        return stripe_gateway.as_dict(intent)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(create, payments))


def seed_payments(count: int, tag: str = "") -> list[dict]:
    """Payments waiting for their card, with bookings, as the booking API leaves them, each with its
    PaymentIntent on the emulator, paid. Returns the intents Stripe sends in `payment_intent.succeeded`."""
    from django.utils import timezone

    from billing import money, stripe_gateway
    from billing.models import Payment, StripeCustomer
    from booking.models import Booking, BookingPackage
    from web.models import User

    talker = User.objects.create(username=f"bench-talker{tag}", role=User.Role.TALKER)
    customer_id = stripe_gateway.customer_create(user_id=talker.pk, email="bench@example.com", name="Bench")
    StripeCustomer.objects.create(user=talker, stripe_customer_id=customer_id)
    listeners = User.objects.bulk_create(
        [User(username=f"bench-listener{tag}-{n}", role=User.Role.LISTENER) for n in range(50)]
    )
    package = BookingPackage.objects.create(name="Bench 20", duration_minutes=20, price="30.00")
    shares = money.split(3000, package.app_fee_percentage)
    start = timezone.now() + timedelta(days=1)
    bookings = Booking.objects.bulk_create(
        Booking(
            talker=talker,
            listener=listeners[n % len(listeners)],
            package=package,
            scheduled_at=start + timedelta(hours=n),
            ends_at=start + timedelta(hours=n, minutes=20),
            total_amount=shares.total,
            app_fee=shares.app_fee,
            listener_amount=shares.listener,
        )
        for n in range(count)
    )
    payments = Payment.objects.bulk_create(
        Payment(
            booking=booking,
            talker=talker,
            amount=shares.total,
            app_fee=shares.app_fee,
            listener_amount=shares.listener,
            status=Payment.Status.REQUIRES_PAYMENT_METHOD,
        )
        for booking in bookings
    )
    started = time.perf_counter()
    intents = _paid_intents(payments, customer_id)
    for payment, intent in zip(payments, intents, strict=True):
        payment.stripe_payment_intent_id = intent["id"]
    Payment.objects.bulk_update(payments, ["stripe_payment_intent_id"], batch_size=500)
    print(f"seeded {len(intents)} paid PaymentIntents on the emulator in {time.perf_counter() - started:.1f} s")
    return intents


def signed_requests(intents: list[dict], path: str) -> list[bytes]:
    """Whole HTTP/1.1 requests, one distinct signed event each, built before the clock starts."""
    from billing.tests.stripe_events import sign, stripe_event

    requests = []
    for intent in intents:
        body = json.dumps(stripe_event("payment_intent.succeeded", intent), indent=2).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
            f"Content-Type: application/json; charset=utf-8\r\nStripe-Signature: {sign(body, secret=SECRET)}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)
    return requests


def random_intents(count: int) -> list[dict]:
    from billing.tests.stripe_events import payment_intent_object

    return [payment_intent_object(status="succeeded", amount=random.choice([3000, 5000, 7000])) for _ in range(count)]


async def _client(port: int, queue: list, latencies: list, stop_at: float, errors: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while queue and time.perf_counter() < stop_at:
            request = queue.pop()
            started = time.perf_counter()
            writer.write(request)
            await writer.drain()
            status_line = await reader.readline()
            length = 0
            close = False
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
                elif name.lower() == "connection" and value.strip().lower() == "close":
                    close = True
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if b" 200 " not in status_line:
                errors.append(status_line)
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


def load(port: int, requests: list[bytes], connections: int, seconds: float) -> dict:
    """Post `requests` over `connections` keep-alive connections for at most `seconds`."""
    queue = list(reversed(requests))
    latencies: list[float] = []
    errors: list = []

    async def run():
        stop_at = time.perf_counter() + seconds
        await asyncio.gather(*(_client(port, queue, latencies, stop_at, errors) for _ in range(connections)))

    started = time.perf_counter()
    asyncio.run(run())
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "latencies": latencies,
        "requests": len(latencies),
        "errors": len(errors),
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else 0,
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99) - 1] if latencies else 0,
        "elapsed": elapsed,
    }


class Gunicorn:
    def __init__(self, app: str, workers: int, threads: int):
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                app,
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                "--worker-class",
                "gthread",
                "--threads",
                str(threads),
                "--keep-alive",
                "30",
                "--backlog",
                "2048",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=_env(),
        )
        deadline = time.monotonic() + 30
        import socket

        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn {app} did not start")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


class Worker:
    def __init__(self, concurrency: int, db_reuse_max: int | None = None, pool: str = "prefork"):
        # The worker keeps Django's database connection for CELERY_DB_REUSE_MAX tasks, as in production;
        # --db-reuse-max overrides it (0: a new connection per task, Celery's own default).
        override = "" if db_reuse_max is None else f"app.conf.CELERY_DB_REUSE_MAX = {db_reuse_max} or None; "
        launcher = f"import sys; from workers.celery import app; {override}app.worker_main(sys.argv[1:])"
        self.proc = subprocess.Popen(
            [
                PYTHON,
                "-c",
                launcher,
                "worker",
                "-Q",
                "webhooks",
                "-c",
                str(concurrency),
                "-P",
                pool,
                "--include",
                "webhook_bare",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "warning",
            ],
            cwd=ROOT,
            env=_env(),
        )

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def purge_queues() -> None:
    from workers.celery import QUEUES, app

    with app.connection_for_write() as connection:
        for queue in QUEUES:
            connection.default_channel.queue_purge(queue)


def wait_processed(count: int, since_pk: int, timeout: float) -> float:
    """Seconds until `count` events received after `since_pk` are processed."""
    from billing.models import WebhookEvent

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = WebhookEvent.objects.filter(pk__gt=since_pk, status=WebhookEvent.Status.PROCESSED).count()
        if done >= count:
            return time.perf_counter()
        time.sleep(0.05)
    raise RuntimeError("events were not all processed in time")


def last_event_pk() -> int:
    from billing.models import WebhookEvent

    return WebhookEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def intake_compare(args) -> tuple[dict, dict]:
    """Both servers up at once, loaded in alternating rounds, so background load on the machine
    falls on both alike."""
    servers = {
        "bare": (Gunicorn("webhook_bare:application", args.gunicorn_workers, args.threads), "/hook/"),
        "talkpay": (
            Gunicorn("web.wsgi:application", args.gunicorn_workers, args.threads),
            "/api/payment/stripe/webhook/",
        ),
    }
    totals = {label: {"requests": 0, "errors": 0, "elapsed": 0.0, "latencies": []} for label in servers}
    try:
        for server, path in servers.values():
            load(server.port, signed_requests(random_intents(200), path), args.connections, 1.0)  # warm up
        for _ in range(args.rounds):
            for label, (server, path) in servers.items():
                requests = signed_requests(random_intents(int(args.seconds * 2000)), path)
                result = load(server.port, requests, args.connections, args.seconds)
                total = totals[label]
                total["requests"] += result["requests"]
                total["errors"] += result["errors"]
                total["elapsed"] += result["elapsed"]
                total["latencies"].extend(result["latencies"])
    finally:
        for server, _ in servers.values():
            server.stop()
    for label, total in totals.items():
        latencies = sorted(total["latencies"])
        total["rps"] = total["requests"] / total["elapsed"]
        print(
            f"intake {label:<9} {total['rps']:7.0f} req/s   p50 {1000 * statistics.median(latencies):6.1f} ms   "
            f"p99 {1000 * latencies[int(len(latencies) * 0.99) - 1]:6.1f} ms   "
            f"({total['requests']} requests in {args.rounds} rounds, {total['errors']} errors)"
        )
    return totals["bare"], totals["talkpay"]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its living children (gunicorn's or the pool's processes)."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def pipeline_round(label: str, app: str, path: str, intents: list[dict], args) -> dict:
    purge_queues()
    server = Gunicorn(app, args.gunicorn_workers, args.threads)
    worker = Worker(args.worker_concurrency, args.db_reuse_max, args.pool)
    try:
        load(server.port, signed_requests(random_intents(50), path), 4, 1.0)  # warm up the server
        time.sleep(2)  # and let the worker start
        since = last_event_pk()
        requests = signed_requests(intents, path)
        cpu_before = _cpu_seconds(worker.proc.pid), _cpu_seconds(server.proc.pid)
        started = time.perf_counter()
        result = load(server.port, requests, args.connections, 600)
        finished = wait_processed(len(intents), since, timeout=600)
        worker_cpu = _cpu_seconds(worker.proc.pid) - cpu_before[0]
        web_cpu = _cpu_seconds(server.proc.pid) - cpu_before[1]
    finally:
        worker.stop()
        server.stop()
    seconds = finished - started
    print(
        f"end-to-end {label:<7} {len(intents) / seconds:7.0f} events/s   ({len(intents)} events in {seconds:.1f} s; "
        f"worker CPU {1000 * worker_cpu / len(intents):.1f} ms, web CPU {1000 * web_cpu / len(intents):.1f} ms per "
        f"event; intake alone took {result['elapsed']:.1f} s, {result['errors']} errors; load avg "
        f"{os.getloadavg()[0]:.1f})",
        flush=True,
    )
    return {"events": len(intents), "seconds": seconds, "worker_cpu": worker_cpu, "web_cpu": web_cpu}


def pipeline_compare(intents: list[dict], args) -> float:
    """Bare and Talkpay in alternating rounds (each its own slice of the events), so background load on
    the machine falls on both alike; the ratio is of events per second over all rounds."""
    pipelines = {
        "bare": ("webhook_bare:application", "/hook/"),
        "talkpay": ("web.wsgi:application", "/api/payment/stripe/webhook/"),
    }
    per_round = len(intents) // (2 * args.e2e_rounds)
    totals = {label: {"events": 0, "seconds": 0.0, "worker_cpu": 0.0, "web_cpu": 0.0} for label in pipelines}
    chunks = iter(range(0, per_round * 2 * args.e2e_rounds, per_round))
    for _ in range(args.e2e_rounds):
        for label, (app, path) in pipelines.items():
            first = next(chunks)
            done = pipeline_round(label, app, path, intents[first : first + per_round], args)
            for key, value in done.items():
                totals[label][key] += value
    rates = {label: total["events"] / total["seconds"] for label, total in totals.items()}
    for label, total in totals.items():
        print(
            f"end-to-end {label:<7} {rates[label]:7.0f} events/s over {args.e2e_rounds} rounds; worker CPU "
            f"{1000 * total['worker_cpu'] / total['events']:.1f} ms per event"
        )
    cpu_ratio = (totals["bare"]["worker_cpu"] / totals["bare"]["events"]) / (
        totals["talkpay"]["worker_cpu"] / totals["talkpay"]["events"]
    )
    print(f"worker CPU per event, bare / talkpay: {100 * cpu_ratio:.0f} %")
    return rates["talkpay"] / rates["bare"]


def profile_processing(count: int) -> None:
    """Process `count` stored succeeded events in this process, as the worker's task does, and say where
    the time goes: queries, transactions and Stripe calls per event, and the profile's top functions."""
    import cProfile
    import pstats
    from collections import Counter

    from django.db import connection

    import billing.stripe_gateway as gateway
    from billing.models import WebhookEvent
    from billing.tests.stripe_events import stripe_event
    from billing.webhooks.processing import webhook_event_process

    intents = seed_payments(count, tag="-profile")
    events = WebhookEvent.objects.bulk_create(
        WebhookEvent(stripe_event_id=event["id"], type=event["type"], payload=event, raw_body=json.dumps(event))
        for event in (stripe_event("payment_intent.succeeded", intent) for intent in intents)
    )
    statements: Counter = Counter()
    implicit = [0]

    def count_query(execute, sql, params, many, context):
        statements[sql.split(None, 1)[0].upper()] += 1
        if not connection.in_atomic_block:
            implicit[0] += 1  # autocommit: a transaction of its own
        return execute(sql, params, many, context)

    commits = [0]
    real_commit = connection._commit

    def counted_commit(*args, **kwargs):
        commits[0] += 1
        return real_commit(*args, **kwargs)

    stripe_calls = [0]
    real_call = gateway.call

    def counted_call(*args, **kwargs):
        stripe_calls[0] += 1
        return real_call(*args, **kwargs)

    connection._commit = counted_commit  # type: ignore[method-assign]
    gateway.call = counted_call
    # CPU time, not wall time: on a shared machine the waits for PostgreSQL and Stripe stretch with the load.
    profiler = cProfile.Profile(time.process_time) if os.environ.get("BENCH_PROFILE_CPU") else cProfile.Profile()
    started = time.perf_counter()
    try:
        with connection.execute_wrapper(count_query):
            profiler.enable()
            for event in events:
                webhook_event_process(webhook_event_id=event.pk)
            profiler.disable()
    finally:
        connection._commit = real_commit  # type: ignore[method-assign]
        gateway.call = real_call
    elapsed = time.perf_counter() - started
    processed = WebhookEvent.objects.filter(pk__in=[e.pk for e in events], status="processed").count()
    queries = sum(statements.values())
    print(
        f"\nprofile: {processed}/{count} events processed in-process in {elapsed:.2f} s "
        f"({1000 * elapsed / count:.1f} ms per event, one process, no broker)"
    )
    print(
        f"per event: {queries / count:.1f} queries ("
        + ", ".join(f"{kind} {n / count:.1f}" for kind, n in statements.most_common())
        + f"), {(commits[0] + implicit[0]) / count:.1f} transactions ({commits[0] / count:.1f} commits, "
        f"{implicit[0] / count:.1f} autocommit statements), {stripe_calls[0] / count:.1f} Stripe calls"
    )
    stats = pstats.Stats(profiler)
    if os.environ.get("BENCH_PROFILE_DUMP"):
        stats.dump_stats(os.environ["BENCH_PROFILE_DUMP"])
    total = sum(timing[2] for timing in stats.stats.values())  # type: ignore[attr-defined]

    def cumulative(*fragments: str) -> float:
        # The outermost matching frames only: their cumulative time includes the inner ones.
        return max(
            (timing[3] for (file, _line, name), timing in stats.stats.items()  # type: ignore[attr-defined]
             if all(fragment in f"{file}:{name}" for fragment in fragments)),
            default=0.0,
        )  # fmt: skip

    parts = {
        "Stripe call (HTTP + SDK)": cumulative("stripe_gateway", ":call"),
        "SQL (psycopg execute)": cumulative("django/db/backends/utils.py", "_execute"),
        "commit": cumulative("django/db/backends/base/base.py", "_commit"),
        "Celery publish (notifications)": cumulative("celery/app/base.py", "send_task"),
        "JSON": cumulative("json/__init__.py", "loads") + cumulative("json/__init__.py", "dumps"),
    }
    print(
        f"time per event {1000 * total / count:.1f} ms (profiled): "
        + ", ".join(f"{name} {1000 * value / count:.1f} ms" for name, value in parts.items())
    )
    stats.sort_stats("tottime").print_stats(12)
    if os.environ.get("BENCH_SHOW_SQL"):
        # One more event, its statements as sent: what the counts above are made of.
        from django.test.utils import CaptureQueriesContext

        extra = seed_payments(1, tag="-sql")[0]
        event = stripe_event("payment_intent.succeeded", extra)
        row = WebhookEvent.objects.create(
            stripe_event_id=event["id"], type=event["type"], payload=event, raw_body=json.dumps(event)
        )
        with CaptureQueriesContext(connection) as captured:
            webhook_event_process(webhook_event_id=row.pk)
        for query in captured.captured_queries:
            print("  SQL", query["sql"][:220])


def cpu_compare(count: int, block: int = 25) -> None:
    """CPU per succeeded event of Talkpay's handler and of the bare task, in this process and in its
    PostgreSQL backend, in alternating blocks of `block` events so that the machine's load falls on both."""
    import gc

    import psutil
    import webhook_bare
    from django.db import connection

    from billing.models import WebhookEvent
    from billing.tests.stripe_events import stripe_event
    from billing.webhooks.processing import webhook_event_process

    intents = seed_payments(2 * count + 100, tag="-cpu")
    events = WebhookEvent.objects.bulk_create(
        WebhookEvent(stripe_event_id=event["id"], type=event["type"], payload=event, raw_body=json.dumps(event))
        for event in (stripe_event("payment_intent.succeeded", intent) for intent in intents)
    )
    run = {
        "talkpay": lambda event, intent: webhook_event_process(webhook_event_id=event.pk),
        "bare": lambda event, intent: webhook_bare.bare_process.run(event.pk, intent["id"]),
    }
    pairs = list(zip(events, intents, strict=True))
    for label, offset in (("talkpay", 0), ("bare", 50)):  # warm up: connections, compiled statements, accounts
        for event, intent in pairs[offset : offset + 50]:
            run[label](event, intent)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = psutil.Process(cursor.fetchone()[0])

    def backend_cpu() -> float:
        times = backend.cpu_times()
        return times.user + times.system

    ours = dict.fromkeys(run, 0.0)
    theirs = dict.fromkeys(run, 0.0)
    done = dict.fromkeys(run, 0)
    rest = pairs[100:]
    gc.collect()
    for start in range(0, len(rest) - 2 * block + 1, 2 * block):
        for index, label in enumerate(run):
            chunk = rest[start + index * block : start + (index + 1) * block]
            cpu, pg = time.process_time(), backend_cpu()
            for event, intent in chunk:
                run[label](event, intent)
            ours[label] += time.process_time() - cpu
            theirs[label] += backend_cpu() - pg
            done[label] += len(chunk)
    for label in run:
        print(
            f"cpu-compare {label:<7} {1000 * ours[label] / done[label]:5.2f} ms in this process, "
            f"{1000 * theirs[label] / done[label]:5.2f} ms in PostgreSQL per event ({done[label]} events)"
        )
    total = {label: (ours[label] + theirs[label]) / done[label] for label in run}
    ratio = 100 * total["bare"] / total["talkpay"]
    print(f"cpu-compare bare / talkpay, both together: {ratio:.0f} % (load avg {os.getloadavg()[0]:.1f})")


def ledger_check() -> bool:
    done = subprocess.run([PYTHON, "manage.py", "ledger_check"], cwd=ROOT, env=_env(), capture_output=True, text=True)
    print(done.stdout.strip().splitlines()[-1] if done.returncode == 0 else done.stdout + done.stderr)
    return done.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each intake round")
    parser.add_argument("--rounds", type=int, default=3, help="intake rounds, alternating bare and talkpay")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--events", type=int, default=2000, help="events per end-to-end pipeline (all rounds)")
    parser.add_argument("--e2e-rounds", type=int, default=2, help="end-to-end rounds, alternating bare and talkpay")
    parser.add_argument("--gunicorn-workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--pool", default="prefork", help="the Celery worker's pool: prefork or threads")
    parser.add_argument(
        "--db-reuse-max", type=int, default=None, help="keep worker DB connections for N tasks (default: settings)"
    )
    parser.add_argument("--profile", type=int, default=0, help="first profile N events in-process, then bench")
    parser.add_argument(
        "--cpu-compare", type=int, default=0, help="first compare CPU per event of N events in-process (no profiler)"
    )
    parser.add_argument("--skip-intake", action="store_true", help="only the end-to-end comparison")
    parser.add_argument(
        "--port-base", type=int, default=0, help="take the servers' ports from this one up (default: any free port)"
    )
    args = parser.parse_args()

    from stripe_emulator.testing import EmulatorProcess

    global STRIPE_API_BASE, PORT_BASE
    PORT_BASE = args.port_base
    emulator = EmulatorProcess(quiet=True, port=_free_port() if PORT_BASE else None)
    emulator.start()
    STRIPE_API_BASE = emulator.url
    try:
        setup_database()
        django_setup()
        from django.conf import settings

        reuse = settings.CELERY_DB_REUSE_MAX if args.db_reuse_max is None else args.db_reuse_max
        print(
            f"gunicorn {args.gunicorn_workers} workers x {args.threads} threads, {args.connections} connections, "
            f"celery {args.pool} x {args.worker_concurrency} (db reuse {reuse or 'off'}), {os.cpu_count()} CPUs, "
            f"load avg {os.getloadavg()[0]:.1f}"
        )
        purge_queues()
        if args.profile:
            profile_processing(args.profile)
        if args.cpu_compare:
            cpu_compare(args.cpu_compare)
        if not args.skip_intake:
            bare, real = intake_compare(args)
            print(f"intake talkpay / bare: {100 * real['rps'] / bare['rps']:.0f} %")

        if args.events:
            intents = seed_payments(2 * args.events)
            print(f"end-to-end talkpay / bare: {100 * pipeline_compare(intents, args):.0f} %")
        purge_queues()
        return 0 if ledger_check() else 1
    finally:
        try:
            from django.conf import settings as configured

            if configured.configured:
                from django.db import connections

                connections.close_all()
            _psql(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        finally:
            emulator.stop()


if __name__ == "__main__":
    sys.exit(main())
