"""Benchmark a payout run: N listeners with 10 payable earnings each, paid by one run of one weekly
period against the Stripe emulator, on PostgreSQL.

    python bench/payout_bench.py [--sizes 1000,10000] [--earnings 10] [--keep-db]
    python bench/payout_bench.py --sizes 100000 --earnings 1     # the issue-16 size: <= 10 min, <= 300 MB

For each size it prints the run's wall time, the peak RSS of the process that runs it (a process of
its own, sampled) and its growth, and the database queries per payout, so one can see the queries do
not grow with N. It uses its own database (`talkpay_bench`, BENCH_DATABASE, dropped and created again;
BENCH_DATABASE_SERVER the server), its own Redis database (BENCH_REDIS_URL, purged at the end) and
starts its own emulator (EmulatorProcess(quiet=True)). Seeding (accounts on the emulator, bookings,
payments, earnings and balanced ledger transactions for them) is not timed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

BENCH_DB = os.environ.get("BENCH_DATABASE", "talkpay_bench")
SERVER = os.environ.get("BENCH_DATABASE_SERVER", "postgres://postgres@127.0.0.1:5432")
os.environ["DATABASE_URL"] = f"{SERVER}/{BENCH_DB}"
# The run enqueues a "payout sent" notification per payout: into a Redis database of the bench's own
# (BENCH_REDIS_URL), purged at the end, never into a shared one that no worker empties.
os.environ["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
os.environ["DJANGO_DEBUG"] = "false"
from web.secrets import throwaway_production_env  # noqa: E402 (needs ROOT on the path)

for _name, _value in throwaway_production_env().items():
    os.environ.setdefault(_name, _value)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")


class RssSampler(threading.Thread):
    """Peak resident memory of this process, sampled every 20 ms."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        import psutil

        self.process = psutil.Process()
        self.start_rss = self.peak = self.process.memory_info().rss
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> int:
        self.stopped.set()
        self.join()
        return max(self.peak, self.process.memory_info().rss)


class QueryCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def create_accounts(count: int, emulator, *, first: int) -> list[str]:
    """Express accounts on the emulator, onboarded (in threads: this is setup, not the benchmark)."""
    from billing.stripe_gateway import connect as gateway

    def one(i: int) -> str:
        account = gateway.account_create(listener_id=10_000_000 + i, email=f"bench{i}@example.com")
        emulator.post(f"/_emulator/accounts/{account['id']}/onboard")
        return account["id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(one, range(first, first + count)))


def seed(*, size: int, per_listener: int, week_monday: date, accounts: list[str], tag: str) -> None:
    from django.contrib.auth.hashers import make_password

    from billing import ledger
    from billing.models import LedgerAccount, LedgerEntry, LedgerTransaction, Payment
    from booking.models import Booking, BookingPackage
    from payouts.models import ListenerPayout, StripeListenerAccount
    from web.models import User

    password = make_password(None)
    talker = User.objects.create(username=f"bench-talker-{tag}", role=User.Role.TALKER, password=password)
    package = BookingPackage.objects.create(name="20 min", duration_minutes=20, price="30.00")
    listeners = User.objects.bulk_create(
        [
            User(username=f"bench-{tag}-{i}", email=f"{tag}{i}@example.com", role=User.Role.LISTENER, password=password)
            for i in range(size)
        ],
        batch_size=2000,
    )
    StripeListenerAccount.objects.bulk_create(
        [
            StripeListenerAccount(
                listener=listener,
                stripe_account_id=account,
                charges_enabled=True,
                payouts_enabled=True,
                details_submitted=True,
            )
            for listener, account in zip(listeners, accounts, strict=True)
        ],
        batch_size=2000,
    )
    completed = datetime.combine(week_monday + timedelta(days=2), datetime.min.time(), tzinfo=UTC)
    for start in range(0, size, 1000):
        chunk = listeners[start : start + 1000]
        bookings = Booking.objects.bulk_create(
            [
                Booking(
                    talker=talker,
                    listener=listener,
                    package=package,
                    status=Booking.Status.COMPLETED,
                    scheduled_at=completed - timedelta(hours=n + 1),
                    ends_at=completed - timedelta(hours=n + 1) + timedelta(minutes=20),
                    completed_at=completed,
                    total_amount=3000,
                    app_fee=300,
                    listener_amount=2700,
                )
                for listener in chunk
                for n in range(per_listener)
            ]
        )
        payments = Payment.objects.bulk_create(
            [
                Payment(
                    booking=booking,
                    talker=talker,
                    amount=3000,
                    app_fee=300,
                    listener_amount=2700,
                    status=Payment.Status.SUCCEEDED,
                )
                for booking in bookings
            ]
        )
        ListenerPayout.objects.bulk_create(
            [
                ListenerPayout(
                    listener_id=booking.listener_id,
                    booking=booking,
                    payment=payment,
                    amount=2700,
                    status=ListenerPayout.Status.PENDING,
                    payable_at=completed,
                )
                for booking, payment in zip(bookings, payments, strict=True)
            ]
        )
    # One balanced transaction books all these payments' splits (the webhook books one per payment).
    ledger.account_get_or_create(ledger.PLATFORM_CASH)
    ledger.account_get_or_create(ledger.APP_REVENUE)
    accounts_by_listener = {
        a.owner_id: a
        for a in LedgerAccount.objects.bulk_create(
            [
                LedgerAccount(
                    code=ledger.listener_payable(listener.pk),
                    name=f"Payable to listener {listener.pk}",
                    kind=LedgerAccount.Kind.LIABILITY,
                    owner=listener,
                )
                for listener in listeners
            ],
            batch_size=2000,
        )
    }
    from django.db import transaction

    cash = LedgerAccount.objects.get(code=ledger.PLATFORM_CASH)
    revenue = LedgerAccount.objects.get(code=ledger.APP_REVENUE)
    # One balanced transaction per 1,000 listeners: the balance check is a deferred trigger per entry
    # that sums its transaction, so one transaction of 100,000 entries would cost 10^10 row reads.
    for start in range(0, size, 1000):
        chunk = listeners[start : start + 1000]
        with transaction.atomic():
            txn = LedgerTransaction.objects.create(key=f"bench-seed-{tag}-{start}", kind="payment_succeeded")
            entries = [
                LedgerEntry(transaction=txn, account=cash, amount=3000 * per_listener * len(chunk)),
                LedgerEntry(transaction=txn, account=revenue, amount=-300 * per_listener * len(chunk)),
            ]
            entries += [
                LedgerEntry(transaction=txn, account=accounts_by_listener[listener.pk], amount=-2700 * per_listener)
                for listener in chunk
            ]
            LedgerEntry.objects.bulk_create(entries, batch_size=5000)


def measure(*, size: int, week_monday: date) -> dict:
    from django.db import connection

    from payouts import services
    from payouts.models import Payout
    from payouts.periods import period_parse

    period = period_parse("weekly", week_monday.isoformat())
    counter = QueryCounter()
    sampler = RssSampler()
    sampler.start()
    started = time.perf_counter()
    profiler = None
    if os.environ.get("BENCH_PROFILE"):
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    with connection.execute_wrapper(counter):
        summary = services.payout_run(period=period)
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    elapsed = time.perf_counter() - started
    peak = sampler.stop()
    paid = Payout.objects.filter(period_start=period.start, status=Payout.Status.PAID).count()
    assert summary.paid == paid == size, (summary, paid)
    assert summary.failed == summary.errors == 0, summary
    return {
        "listeners": size,
        "payouts paid": paid,
        "wall s": round(elapsed, 1),
        "payouts/s": round(paid / elapsed),
        "peak RSS MB": round(peak / 2**20),
        "RSS growth MB": round((peak - sampler.start_rss) / 2**20),
        "queries": counter.count,
        "queries/payout": round(counter.count / paid, 2),
    }


def measure_in_child(*, size: int, week_monday: date, emulator_url: str) -> dict:
    """The run in a process of its own, so its peak RSS is the run's, not the seeding's leftovers."""
    import json
    import subprocess

    env = {**os.environ, "BENCH_MEASURE": f"{size},{week_monday.isoformat()}", "STRIPE_API_BASE": emulator_url}
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__)], env=env, check=True, capture_output=True, text=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_main(spec: str) -> None:
    import json

    import django

    django.setup()
    logging.getLogger("stripe").setLevel(logging.WARNING)
    size, monday = spec.split(",")
    print(json.dumps(measure(size=int(size), week_monday=date.fromisoformat(monday))))


def main() -> None:
    # A plain `kill` still stops the emulator and closes connections (SystemExit unwinds the with-blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--earnings", type=int, default=10, help="payable earnings per listener")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    recreate_database()
    import django

    django.setup()
    logging.getLogger("stripe").setLevel(logging.WARNING)
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from tabulate import tabulate

    from stripe_emulator.testing import EmulatorProcess

    call_command("migrate", verbosity=0)
    rows = []
    with EmulatorProcess(quiet=True) as emulator:
        settings.STRIPE_API_BASE = emulator.url
        emulator.post("/_emulator/balance/topup", {"amount": 10**12, "currency": "usd"})
        week = date(2026, 10, 5)  # a Monday in the past; one week per size
        for size in sizes:
            t0 = time.perf_counter()
            accounts = create_accounts(size, emulator, first=sum(sizes[: sizes.index(size)]))
            seed(size=size, per_listener=args.earnings, week_monday=week, accounts=accounts, tag=f"s{size}")
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")  # what autovacuum does after a load like this
            print(f"seeded {size} listeners x {args.earnings} earnings in {time.perf_counter() - t0:.0f} s", flush=True)
            rows.append(measure_in_child(size=size, week_monday=week, emulator_url=emulator.url))
            print(tabulate([rows[-1]], headers="keys"), flush=True)
            week += timedelta(days=7)
    print()
    print(tabulate(rows, headers="keys"))
    from workers.celery import QUEUES, app

    with app.connection_for_write() as broker:
        for queue in QUEUES:
            broker.default_channel.queue_purge(queue)
    if not args.keep_db:
        from django.db import connections

        connections.close_all()
        import psycopg

        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


if __name__ == "__main__":
    if os.environ.get("BENCH_MEASURE"):
        measure_main(os.environ["BENCH_MEASURE"])
    else:
        main()
