"""Benchmark a payout run: N listeners with 10 payable earnings each, paid by one run of one weekly
period against the Stripe emulator, on PostgreSQL.

    python bench/payout_bench.py [--sizes 1000,10000] [--earnings 10] [--keep-db]
    python bench/payout_bench.py --sizes 100000 --earnings 1     # the issue-16 size: <= 10 min, <= 300 MB
    python bench/payout_bench.py --sizes 10000 --earnings 1 --py-spy /tmp/spy   # profile both sides

For each size it prints the run's wall time, the peak RSS of the process that runs it (a process of
its own, sampled) and its growth, and the database queries per payout, so one can see the queries do
not grow with N. It uses its own database (`talkpay_bench`, `--database` or BENCH_DATABASE, dropped and
created again; BENCH_DATABASE_SERVER the server), its own Redis database (`--redis-url` or
BENCH_REDIS_URL, purged at the end) and starts its own emulator (EmulatorProcess(quiet=True), on a free
port or `--emulator-port`): two sessions on one machine pass different ones. Seeding (accounts on the
emulator, bookings, payments, earnings and balanced ledger transactions for them) is not timed.
`--profile` prints cProfile's top functions of the run; `--py-spy DIR` records py-spy flame graphs
(SVG) of the run's process and of the emulator's, one pair per size.
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


def _early_option(name: str, env: str) -> None:
    # The database and Redis are read at import (settings), before argparse runs: taken from argv here.
    for i, arg in enumerate(sys.argv):
        if arg == name and i + 1 < len(sys.argv):
            os.environ[env] = sys.argv[i + 1]
        elif arg.startswith(name + "="):
            os.environ[env] = arg.split("=", 1)[1]


_early_option("--database", "BENCH_DATABASE")
_early_option("--redis-url", "BENCH_REDIS_URL")

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
    """Counts the run's queries and the wall time spent in them, per statement (its first 90 characters)."""

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.by_statement: dict[str, list] = {}

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            took = time.perf_counter() - started
            self.seconds += took
            row = self.by_statement.setdefault(" ".join(sql.split())[:90], [0, 0.0])
            row[0] += 1
            row[1] += took

    def report(self, top: int = 10) -> None:
        print(f"\nqueries: {self.count} in {self.seconds:.1f} s; slowest statements in total:", file=sys.stderr)
        for sql, (n, seconds) in sorted(self.by_statement.items(), key=lambda kv: -kv[1][1])[:top]:
            print(f"  {seconds:7.2f} s {n:6d} x  {sql}", file=sys.stderr)


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
                transfers_capability="active",
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
    import psutil
    from django.db import connection

    from payouts import services
    from payouts.models import Payout
    from payouts.periods import period_parse

    period = period_parse("weekly", week_monday.isoformat())
    counter = QueryCounter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = psutil.Process(cursor.fetchone()[0])
    backend_cpu = sum(backend.cpu_times()[:2])
    cpu = time.process_time()
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
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    backend_cpu = sum(backend.cpu_times()[:2]) - backend_cpu
    peak = sampler.stop()
    counter.report()
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
        "run CPU ms/payout": round(cpu * 1000 / paid, 2),
        "PostgreSQL CPU ms/payout": round(backend_cpu * 1000 / paid, 2),
        "in queries ms/payout": round(counter.seconds * 1000 / paid, 2),
    }


def measure_in_child(*, size: int, week_monday: date, emulator, spy_dir: str | None = None) -> dict:
    """The run in a process of its own, so its peak RSS is the run's, not the seeding's leftovers."""
    import json
    import subprocess

    import psutil

    env = {**os.environ, "BENCH_MEASURE": f"{size},{week_monday.isoformat()}", "STRIPE_API_BASE": emulator.url}
    child = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__)], env=env, stdout=subprocess.PIPE, stderr=None, text=True
    )
    spies = []
    if spy_dir:
        os.makedirs(spy_dir, exist_ok=True)
        for name, pid in (("run", child.pid), ("emulator", emulator.proc.pid)):
            out = os.path.join(spy_dir, f"{name}-{size}.txt")
            spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
            spies.append(
                subprocess.Popen(
                    # --gil: only the thread holding the GIL, i.e. where the process's Python CPU goes
                    [spy, "record", "--gil", "--nonblocking", "--rate", "50", "--format", "raw"]
                    + ["-p", str(pid), "-o", out],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
    emulator_process = psutil.Process(emulator.proc.pid)
    emulator_cpu = sum(emulator_process.cpu_times()[:2])
    stdout, _ = child.communicate()
    emulator_cpu = sum(emulator_process.cpu_times()[:2]) - emulator_cpu
    for spy in spies:
        spy.send_signal(signal.SIGINT)  # py-spy writes its samples on SIGINT
        spy.wait(60)
    for name in ("run", "emulator") if spy_dir else ():
        spy_summary(os.path.join(spy_dir, f"{name}-{size}.txt"), title=f"{name}, {size} listeners")
    if child.returncode:
        raise SystemExit(f"the measured run exited with {child.returncode}")
    row = json.loads(stdout.strip().splitlines()[-1])
    row["emulator CPU ms/payout"] = round(emulator_cpu * 1000 / row["payouts paid"], 2)
    return row


def _frame_name(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)": one entry per function, not per line
    name, _, where = frame.partition(" (")
    return f"{name} ({where.split(':')[0].rsplit('/', 1)[-1]})"


def spy_summary(path: str, *, title: str, top: int = 18) -> None:
    """The functions that were on the stack in most samples (inclusive), from py-spy's collapsed stacks;
    the file itself feeds flamegraph.pl or speedscope."""
    from collections import Counter

    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    if not os.path.exists(path):
        print(f"py-spy wrote nothing to {path}", file=sys.stderr)
        return
    with open(path) as samples:
        for line in samples:
            stack, _, count = line.rstrip().rpartition(" ")
            if not stack or not count.isdigit():
                continue  # a line py-spy was still writing
            n = int(count)
            total += n
            frames = [_frame_name(f) for f in stack.split(";")]
            for frame in dict.fromkeys(frames):
                inclusive[frame] += n
            own[frames[-1]] += n
    print(f"\npy-spy, {title}: {total} samples; inclusive / own share of samples", file=sys.stderr)
    for frame, n in inclusive.most_common(top):
        print(f"  {n / total:6.1%} {own[frame] / total:6.1%}  {frame}", file=sys.stderr)
    print("  own time, top:", file=sys.stderr)
    for frame, n in own.most_common(10):
        print(f"  {n / total:6.1%}  {frame}", file=sys.stderr)


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
    parser.add_argument("--database", help="the bench's database name (default talkpay_bench; dropped and created)")
    parser.add_argument("--redis-url", help="the bench's Redis database (default redis://127.0.0.1:6379/12; purged)")
    parser.add_argument("--emulator-port", type=int, help="the emulator's port (default: a free one)")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions of each run")
    parser.add_argument("--py-spy", metavar="DIR", help="py-spy flame graphs of the run and the emulator into DIR")
    args = parser.parse_args()
    if args.profile:
        os.environ["BENCH_PROFILE"] = "1"
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
    with EmulatorProcess(port=args.emulator_port, quiet=True) as emulator:
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
            rows.append(measure_in_child(size=size, week_monday=week, emulator=emulator, spy_dir=args.py_spy))
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
