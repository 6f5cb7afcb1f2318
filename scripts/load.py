"""`make load`: a Locust load test of the whole flow, booking to confirmation, against a stack it starts.

    python -m scripts.load [--users 20] [--spawn-rate 5] [--run-time 60] [--max-requests 20000]
    python -m scripts.load --steps 5,10,20,40 --run-time 30     # find the knee
    python -m scripts.load --soak                                # 10 minutes at 20 users: RSS and connections

Everything is its own and on 127.0.0.1 only: a fresh PostgreSQL database (talkpay_load_stack on
LOAD_POSTGRES, dropped at the end), a Redis server of its own (port LOAD_REDIS_PORT, 6392), the Stripe
emulator, the web (gunicorn with gunicorn.conf.py) and the workers exactly as `make run` starts them
(scripts.run.processes; no beat and no Flower), with the production settings (DEBUG off). Ports: WEB_PORT
8160, STRIPE_EMULATOR_PORT 12160, WORKER_METRICS_PORT 9860. It seeds packages, talkers and listeners
(with JWTs minted directly: sign-in's password hashing is not what is measured), runs Locust headless
(scripts/locustfile.py: the user mix), and prints per endpoint requests/s and p50/p95/p99, the errors,
payment-to-confirmed p50/p99 (for the whole run and for its steady state, every user running), and
what each process used (CPU, queues, database connections, requests in flight against the web's
threads), so one can see what saturates first. Locust's CSV and HTML report go
to .run/load/<label>/. Exit status 1 when any request failed or a process of the stack restarted.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import timeit
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.run import processes  # noqa: E402
from scripts.services import RUN_DIR, reachable, start_embedded_redis  # noqa: E402
from web.secrets import throwaway_production_env  # noqa: E402

BIN = Path(sys.executable).parent
LOAD_DIR = RUN_DIR / "load"
POSTGRES = os.environ.get("LOAD_POSTGRES", "postgres://postgres@127.0.0.1:5432")
DATABASE = os.environ.get("LOAD_DATABASE", "talkpay_load_stack")
QUEUES = ("stripe", "payments", "webhooks", "payouts", "maintenance")
# Goals of issue 16, at 20 users.
GOAL_CREATE_P99_MS = 300
GOAL_CONFIRMED_P99_MS = 2000
SOAK_USERS, SOAK_SECONDS, SOAK_WARMUP_SECONDS = 20, 600, 60


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def stack_env(*, wait_seconds: float | None, recycle: bool) -> dict[str, str]:
    web_port = _port("WEB_PORT", 8160)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "STRIPE_"))},
        **throwaway_production_env(),
        "DJANGO_SETTINGS_MODULE": "web.settings",
        "DJANGO_DEBUG": "false",
        "TALKPAY_IGNORE_RUN_ENV": "true",
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": f"{POSTGRES}/{DATABASE}",
        "WEB_PORT": str(web_port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}",
        "FLOWER_PORT": str(_port("FLOWER_PORT", 5660)),
        "FLOWER_BASIC_AUTH": "operator:not-started",  # scripts.run.processes() names Flower; it is not started
        "WORKER_METRICS_PORT": str(_port("WORKER_METRICS_PORT", 9860)),
        "STRIPE_EMULATOR_PORT": str(_port("STRIPE_EMULATOR_PORT", 12160)),
        # Many users from one address: the per-address and per-user throttles would only answer 429.
        "API_THROTTLE_USER": "1000000/min",
        "API_THROTTLE_ANON": "1000000/min",
        "API_THROTTLE_AUTH": "1000000/min",
        "API_THROTTLE_BOOKING_CREATE": "1000000/min",
        "JWT_ACCESS_MINUTES": "240",
        # A listener completes a session as soon as it started (the rule's minimum run is minutes long).
        "SESSION_MIN_RUN_PERCENT": "0",
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
    }
    env["STRIPE_API_BASE"] = f"http://127.0.0.1:{env['STRIPE_EMULATOR_PORT']}"
    if wait_seconds is not None:
        env["BOOKING_PAYMENT_WAIT_SECONDS"] = str(wait_seconds)
    if not recycle:
        # The soak measures growth: gunicorn's recycling every MAX_REQUESTS would hide a leak.
        env["GUNICORN_MAX_REQUESTS"] = "0"
    return env


def _psql(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
        connection.execute(sql)


def _run_alone(database: str):
    """Hold a PostgreSQL advisory lock named after the load database for the whole run: a second load
    test (another terminal, another checkout) would drop and re-create the same database under this
    one's stack. The lock goes with the connection, also when the process is killed."""
    import psycopg

    connection = psycopg.connect(f"{POSTGRES}/postgres", autocommit=True)
    row = connection.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (f"talkpay-load:{database}",)).fetchone()
    if not row or not row[0]:
        connection.close()
        raise SystemExit(f"another load test is using the database {database} (LOAD_DATABASE): wait for it to end")
    return connection


class Stack:
    """Redis, emulator, web and workers of the load test, each in a process group of its own."""

    def __init__(self, env: dict[str, str], out: Path):
        self.env = env
        self.out = out
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: list = []

    def start(self) -> None:
        port = _port("LOAD_REDIS_PORT", 6392)
        if reachable("127.0.0.1", port):
            raise SystemExit(f"port {port} (LOAD_REDIS_PORT) is taken: another load test running?")
        redis, url = start_embedded_redis(port=port, workdir=self.out / "redis")
        self.procs["redis"] = redis
        self.env["REDIS_URL"] = url
        for name in ("WEB_PORT", "STRIPE_EMULATOR_PORT", "WORKER_METRICS_PORT"):
            if reachable("127.0.0.1", int(self.env[name])):
                raise SystemExit(f"port {self.env[name]} ({name}) is taken")
        _psql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        _psql(f"CREATE DATABASE {DATABASE}")
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=self.env, cwd=ROOT, check=True)
        subprocess.run([*manage, "seed_demo", "--no-users"], env=self.env, cwd=ROOT, check=True, capture_output=True)
        webhook_url = f"http://127.0.0.1:{self.env['WEB_PORT']}/api/payment/stripe/webhook/"
        extra = {
            "stripe-emulator": f"{sys.executable} -m stripe_emulator --quiet --port {self.env['STRIPE_EMULATOR_PORT']}"
            f" --webhook-url {webhook_url} --webhook-secret {self.env['STRIPE_WEBHOOK_SECRET']}"
        }
        metrics = self.out / "prometheus"
        for name, (command, penv) in processes(self.env, extra).items():
            if name in ("beat", "flower"):
                continue
            penv = {**penv}
            if "PROMETHEUS_MULTIPROC_DIR" in penv:
                kind = "web" if name == "web" else "worker"
                penv["PROMETHEUS_MULTIPROC_DIR"] = str(metrics / kind)
                (metrics / kind).mkdir(parents=True, exist_ok=True)
            log = open(self.out / f"{name}.log", "w")
            self.logs.append(log)
            self.procs[name] = subprocess.Popen(
                command, shell=True, env=penv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        _wait_http(f"http://127.0.0.1:{self.env['WEB_PORT']}/api/health/")
        _wait_http(f"{self.env['STRIPE_API_BASE']}/v1/balance", auth=self.env["STRIPE_SECRET_KEY"])

    def trees(self) -> dict[str, list]:
        """name → the processes of that part of the stack (supervisor, master, pool children)."""
        import psutil

        found = {}
        for name, proc in self.procs.items():
            try:
                root = psutil.Process(proc.pid)
                found[name] = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                found[name] = []
        return found

    def restarts(self) -> list[str]:
        lines = []
        for name in self.procs:
            path = self.out / f"{name}.log"
            if path.exists():
                lines += [f"{name}: {line.strip()}" for line in path.read_text().splitlines() if line.startswith("!! ")]
        return lines

    def stop(self) -> None:
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM) if name != "redis" else proc.terminate()
                except ProcessLookupError:
                    pass
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=25)
            except subprocess.TimeoutExpired:
                if name != "redis":
                    os.killpg(proc.pid, signal.SIGKILL)
                else:
                    proc.kill()
        for log in self.logs:
            log.close()
        from django.conf import settings

        if settings.configured:
            from django.db import connections

            connections.close_all()
        _psql(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def _wait_http(url: str, auth: str = "", timeout: float = 90) -> None:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {auth}"} if auth else {})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s (logs in {LOAD_DIR})")


def seed(env: dict[str, str], *, talkers: int, listeners: int, session_listeners: int) -> dict:
    """Users made in bulk (one unusable password hash for all) and an access token each."""
    os.environ.update(env)
    import django

    django.setup()
    from django.contrib.auth.hashers import make_password
    from django.db import connections

    from booking.models import BookingPackage
    from web.models import User
    from web.tokens import UserRefreshToken

    password = make_password(None)

    def make(prefix: str, count: int, role: str) -> list[dict]:
        users = User.objects.bulk_create(
            User(username=f"{prefix}-{n:05d}", email=f"{prefix}-{n}@load.example", role=role, password=password)
            for n in range(count)
        )
        return [{"id": user.pk, "token": str(UserRefreshToken.for_user(user).access_token)} for user in users]

    seeded = {
        "talkers": make("load-talker", talkers, User.Role.TALKER),
        # Sorted first by username, so they are the listeners the browse pages show.
        "listeners": [{"id": u["id"]} for u in make("load-listener", listeners, User.Role.LISTENER)],
        "session_listeners": make("load-session-listener", session_listeners, User.Role.LISTENER),
        "package_ids": list(BookingPackage.objects.filter(is_active=True).values_list("pk", flat=True)),
        "emulator_url": env["STRIPE_API_BASE"],
        "publishable_key": env["STRIPE_PUBLISHABLE_KEY"],
    }
    connections.close_all()
    return seeded


class Sampler(threading.Thread):
    """Once a second: CPU and RSS of each part of the stack, of Locust, of PostgreSQL's backends for the
    load database and of the whole machine; queue depths; the load database's connections."""

    def __init__(self, stack: Stack, locust_pid: int):
        super().__init__(daemon=True)
        import psutil

        self.stack = stack
        self.locust = psutil.Process(locust_pid)
        self.samples: list[dict] = []
        self.stopped = threading.Event()
        self._procs: dict[int, object] = {}

    def _cpu(self, processes) -> float:
        import psutil

        total = 0.0
        for process in processes:
            known = self._procs.setdefault(process.pid, process)
            try:
                total += known.cpu_percent(None)
            except psutil.Error:
                pass
        return total

    @staticmethod
    def _rss(processes) -> int:
        import psutil

        total = 0
        for process in processes:
            try:
                total += process.memory_info().rss
            except psutil.Error:
                pass
        return total

    def run(self) -> None:
        import psutil
        import psycopg
        import redis

        queue_client = redis.Redis.from_url(self.stack.env["REDIS_URL"])
        database = psycopg.connect(f"{POSTGRES}/postgres", autocommit=True)
        psutil.cpu_percent(None)
        self.transactions_start = self._transactions(database)
        try:
            while not self.stopped.wait(1.0):
                trees = self.stack.trees()
                try:
                    locust = [self.locust, *self.locust.children(recursive=True)]
                except psutil.Error:
                    locust = []
                rows = database.execute(
                    "SELECT pid, state FROM pg_stat_activity WHERE datname = %s", (DATABASE,)
                ).fetchall()
                backends = []
                for pid, _state in rows:
                    try:
                        backends.append(self._procs.get(pid) or psutil.Process(pid))
                    except psutil.Error:
                        pass
                sample = {
                    "t": time.monotonic(),
                    "machine_cpu": psutil.cpu_percent(None),
                    "load1": os.getloadavg()[0],
                    "cpu": {name: self._cpu(procs) for name, procs in trees.items()},
                    "rss": {name: self._rss(procs) for name, procs in trees.items()},
                    "cpu_locust": self._cpu(locust),
                    "cpu_postgres": self._cpu(backends),
                    "db_connections": len(rows),
                    "db_active": sum(1 for _pid, state in rows if state == "active"),
                    "queues": {queue: queue_client.llen(queue) for queue in QUEUES},
                }
                self.samples.append(sample)
        finally:
            self.transactions = self._transactions(database) - self.transactions_start
            database.close()

    @staticmethod
    def _transactions(database) -> int:
        """Transactions of the load database so far: in autocommit every query outside a transaction
        is one, so this counts polling queries as well as the services' transactions."""
        row = database.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", (DATABASE,)
        ).fetchone()
        return int(row[0]) if row else 0

    def stop(self) -> list[dict]:
        self.stopped.set()
        self.join(timeout=5)
        if self.samples:
            self.samples[-1]["transactions"] = getattr(self, "transactions", 0)
        return self.samples[1:]  # the first CPU readings have no interval behind them


def run_locust(
    stack: Stack,
    seed_data: dict,
    *,
    users: int,
    spawn_rate: float,
    run_time: int,
    max_requests: int,
    prefix: Path,
    phase: int,
    phases: int,
) -> tuple[dict, list[dict]]:
    # Each phase books its own slots: far ones 40 days apart per phase, near ones from its own listeners.
    base = (datetime.now(UTC) + timedelta(days=2 + 40 * phase)).replace(minute=0, second=0, microsecond=0)
    pool = seed_data["session_listeners"]
    share = len(pool) // phases
    phase_seed = {**seed_data, "slot_base": base.isoformat(), "session_listeners": pool[phase * share :][:share]}
    seed_file = prefix.with_suffix(".seed.json")
    seed_file.write_text(json.dumps(phase_seed))
    command = [
        str(BIN / "locust"),
        "-f", str(ROOT / "scripts" / "locustfile.py"),
        "--headless", "--only-summary",
        "--host", f"http://127.0.0.1:{stack.env['WEB_PORT']}",
        "-u", str(users), "-r", str(spawn_rate), "-t", f"{run_time}s", "--stop-timeout", "5",
        "--csv", str(prefix), "--html", str(prefix) + ".html",
        "--exit-code-on-error", "0",
    ]  # fmt: skip
    env = {
        **os.environ,
        "LOAD_SEED_FILE": str(seed_file),
        "LOAD_MAX_REQUESTS": str(max_requests),
        "LOAD_SAMPLES_FILE": str(prefix) + ".samples.tsv",
    }
    with open(str(prefix) + ".locust.log", "w") as log:
        locust = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        sampler = Sampler(stack, locust.pid)
        sampler.start()
        started = time.monotonic()
        try:
            locust.wait(timeout=run_time + 120)
        except subprocess.TimeoutExpired:
            locust.kill()
            raise
        elapsed = time.monotonic() - started
        samples = sampler.stop()
    if locust.returncode not in (0, 1):
        raise SystemExit(f"locust exited with {locust.returncode}; see {prefix}.locust.log")
    return {**read_stats(prefix, elapsed), "steady": steady_state(Path(str(prefix) + ".samples.tsv"))}, samples


def _p(values: list[float], quantile: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    return sorted(values)[max(math.ceil(quantile * len(values)), 1) - 1]


def steady_state(path: Path) -> dict:
    """create_booking's and payment → confirmed's percentiles from the moment every user was running
    (Locust's spawning complete) to the end; empty when the run never got there."""
    if not path.exists():
        return {}
    spawned_at = None
    created: list[float] = []
    confirmed: list[float] = []
    errors = 0
    for line in path.read_text().splitlines():
        at, kind, name, value, failed = line.split("\t")
        if kind == "SPAWNED":
            spawned_at = float(at)
            continue
        if spawned_at is None or float(at) < spawned_at:
            continue
        errors += int(failed)
        if (kind, name) == ("POST", "POST create_booking"):
            created.append(float(value))
        elif (kind, name) == ("FLOW", "payment_to_confirmed"):
            confirmed.append(float(value))
    if spawned_at is None:
        return {}
    return {
        "errors": errors,
        "creates": len(created),
        "create_p50": _p(created, 0.5),
        "create_p95": _p(created, 0.95),
        "create_p99": _p(created, 0.99),
        "confirmed": len(confirmed),
        "confirmed_p50": _p(confirmed, 0.5),
        "confirmed_p99": _p(confirmed, 0.99),
    }


def read_stats(prefix: Path, elapsed: float) -> dict:
    rows = {}
    with open(str(prefix) + "_stats.csv") as handle:
        for row in csv.DictReader(handle):
            if row["Name"] == "Aggregated":
                continue
            rows[(row["Type"], row["Name"])] = row
    failures = []
    with open(str(prefix) + "_failures.csv") as handle:
        failures = list(csv.DictReader(handle))
    return {"rows": rows, "failures": failures, "elapsed": elapsed}


def _ms(row: dict, column: str) -> float:
    value = row.get(column) or "0"
    return float(value) if value != "N/A" else 0.0


def report(title: str, stats: dict, samples: list[dict], env: dict[str, str]) -> dict:
    rows = stats["rows"]
    http = {key: row for key, row in rows.items() if key[0] != "FLOW"}
    total_requests = sum(int(row["Request Count"]) for row in http.values())
    total_failures = sum(int(row["Failure Count"]) for row in http.values())
    flow_failures = sum(int(row["Failure Count"]) for key, row in rows.items() if key[0] == "FLOW")
    rps = sum(float(row["Requests/s"]) for row in http.values())
    print(f"\n=== {title} ===")
    print(f"{'endpoint':<44}{'requests':>9}{'errors':>7}{'req/s':>8}{'p50':>7}{'p95':>7}{'p99':>7}  ms")
    for (_kind, name), row in sorted(http.items(), key=lambda item: item[0][1]):
        print(
            f"{name:<44}{row['Request Count']:>9}{row['Failure Count']:>7}{float(row['Requests/s']):>8.1f}"
            f"{_ms(row, '50%'):>7.0f}{_ms(row, '95%'):>7.0f}{_ms(row, '99%'):>7.0f}"
        )
    print(f"{'all HTTP':<44}{total_requests:>9}{total_failures:>7}{rps:>8.1f}")
    created = rows.get(("POST", "POST create_booking"), {})
    confirmed = rows.get(("FLOW", "payment_to_confirmed"), {})
    whole = rows.get(("FLOW", "book_to_confirmed"), {})
    answered_202 = int(rows.get(("FLOW", "create_booking_answered_202"), {}).get("Request Count", 0))
    print(
        f"payment → confirmed: {confirmed.get('Request Count', 0)} payments, p50 {_ms(confirmed, '50%'):.0f} ms, "
        f"p95 {_ms(confirmed, '95%'):.0f} ms, p99 {_ms(confirmed, '99%'):.0f} ms, {flow_failures} not confirmed in time"
    )
    print(
        f"create_booking → confirmed (whole flow): p50 {_ms(whole, '50%'):.0f} ms, p99 {_ms(whole, '99%'):.0f} ms; "
        "create_booking answered 202 (the worker slower than BOOKING_PAYMENT_WAIT_SECONDS): "
        f"{answered_202}"
    )
    steady = stats.get("steady") or {}
    if steady:
        print(
            f"steady state (every user running, the ramp-up left out): create_booking {steady['creates']} requests, "
            f"p50 {steady['create_p50']:.0f} ms, p95 {steady['create_p95']:.0f} ms, p99 {steady['create_p99']:.0f} ms; "
            f"payment → confirmed {steady['confirmed']}, p50 {steady['confirmed_p50']:.0f} ms, "
            f"p99 {steady['confirmed_p99']:.0f} ms; errors {steady['errors']}"
        )
    for failure in stats["failures"][:10]:
        print(f"  error x{failure['Occurrences']}: {failure['Method']} {failure['Name']}: {failure['Error'][:160]}")
    saturation = summarize_samples(samples, http, stats["elapsed"], env, flows=int(confirmed.get("Request Count", 0)))
    errors = total_failures + flow_failures
    return {
        "requests": total_requests,
        "errors": errors,
        "rps": rps,
        "create_p99": _ms(created, "99%"),
        "create_p50": _ms(created, "50%"),
        "confirmed_p50": _ms(confirmed, "50%"),
        "confirmed_p99": _ms(confirmed, "99%"),
        "steady": steady,
        "http_p99": max((_ms(row, "99%") for key, row in http.items() if "emulator" not in key[1]), default=0),
        **saturation,
    }


def summarize_samples(samples: list[dict], http: dict, elapsed: float, env: dict[str, str], *, flows: int) -> dict:
    if not samples:
        return {}

    def mean_max(values: list[float]) -> str:
        return f"{statistics.fmean(values):.0f}/{max(values):.0f}"

    names = list(samples[0]["cpu"])
    cpu = {name: [s["cpu"].get(name, 0.0) for s in samples] for name in names}
    parts = ", ".join(f"{name} {mean_max(values)}" for name, values in cpu.items())
    print(f"CPU % mean/max (100 = one core): {parts}, postgres {mean_max([s['cpu_postgres'] for s in samples])}, "
          f"locust {mean_max([s['cpu_locust'] for s in samples])}; machine "
          f"{mean_max([s['machine_cpu'] for s in samples])} % of {os.cpu_count()} cores, load avg "
          f"{statistics.fmean(s['load1'] for s in samples):.1f}")  # fmt: skip
    depth = {queue: max(s["queues"][queue] for s in samples) for queue in QUEUES}
    print("queue depth max: " + ", ".join(f"{queue} {value}" for queue, value in depth.items()))
    print(
        f"database connections mean/max {mean_max([s['db_connections'] for s in samples])}, active "
        f"{mean_max([s['db_active'] for s in samples])}"
    )
    # Little's law: the web's mean concurrency is the sum of its requests' times over the run's length.
    busy = sum(
        float(row["Average Response Time"]) / 1000 * int(row["Request Count"])
        for key, row in http.items()
        if "emulator" not in key[1]
    )
    threads = int(env.get("GUNICORN_WORKERS", "2")) * int(env.get("GUNICORN_THREADS", "8"))
    in_flight = busy / elapsed if elapsed else 0
    print(f"web requests in flight (mean, Little's law): {in_flight:.1f} of {threads} gunicorn threads")
    # CPU time per confirmed booking (the browsing around it included): less noisy than latency on a
    # shared machine, where the other tenants' load stretches every wait.
    if flows:
        cpu_seconds = {name: sum(values) / 100 for name, values in cpu.items()}
        cpu_seconds["postgres"] = sum(s["cpu_postgres"] for s in samples) / 100
        print(
            f"CPU per confirmed booking ({flows}): "
            + ", ".join(f"{name} {1000 * value / flows:.0f} ms" for name, value in cpu_seconds.items() if value)
            + f"; database transactions {samples[-1].get('transactions', 0) / flows:.1f}"
        )
    return {
        "cpu": {name: statistics.fmean(values) for name, values in cpu.items()},
        "cpu_postgres": statistics.fmean(s["cpu_postgres"] for s in samples),
        "queue_max": depth,
        "in_flight": in_flight,
        "threads": threads,
        "machine_cpu": statistics.fmean(s["machine_cpu"] for s in samples),
    }


def wait_drained(stack: Stack, timeout: float = 60) -> None:
    import redis

    client = redis.Redis.from_url(stack.env["REDIS_URL"])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(client.llen(queue) for queue in QUEUES):
        time.sleep(0.5)
    time.sleep(2)


def soak_report(samples: list[dict], warmup: float) -> bool:
    start = samples[0]["t"]
    after = [s for s in samples if s["t"] - start >= warmup]
    if len(after) < 2:
        print("soak: too short to compare after the warm-up")
        return True
    first, last = after[0], after[-1]
    ok = True
    print(f"\n=== soak: growth after the {warmup:.0f} s warm-up, over {last['t'] - first['t']:.0f} s ===")
    for name in first["rss"]:
        if name == "redis":
            continue
        begin, end = first["rss"][name], last["rss"][name]
        peak = max(s["rss"][name] for s in after)
        growth = 100 * (end - begin) / begin if begin else 0
        ok &= growth <= 10 or name == "stripe-emulator"  # the emulator keeps every object: it grows by design
        print(
            f"{name:<16} RSS {begin / 2**20:7.1f} MB → {end / 2**20:7.1f} MB ({growth:+.1f} %), "
            f"peak {peak / 2**20:.1f} MB"
        )
    # Connections open lazily (a gunicorn thread's first request, a pool process's first task) and are
    # bounded by threads + pool processes: growth means the last minutes hold more than the first did.
    minutes: dict[int, list[int]] = {}
    for sample in after:
        minutes.setdefault(int((sample["t"] - first["t"]) // 60), []).append(sample["db_connections"])
    series = [max(values) for _, values in sorted(minutes.items())]
    print(
        f"database connections: {first['db_connections']} after warm-up → {last['db_connections']} at the end; "
        f"max per minute {series}"
    )
    ok &= series[-1] <= max(series[: max(1, len(series) // 3)])
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--spawn-rate", type=float, default=5)
    parser.add_argument("--run-time", type=int, default=60, help="seconds per run (per step with --steps)")
    parser.add_argument("--max-requests", type=int, default=50000, help="stop a run after this many requests")
    parser.add_argument("--steps", default="", help="users per step, e.g. 5,10,20,40: find the knee")
    parser.add_argument("--soak", action="store_true", help=f"{SOAK_SECONDS} s at {SOAK_USERS} users: RSS growth")
    parser.add_argument("--wait", type=float, default=None, help="BOOKING_PAYMENT_WAIT_SECONDS for the web")
    parser.add_argument("--label", default="", help="directory under .run/load/ (default: by mode)")
    args = parser.parse_args()

    if args.soak:
        steps = [SOAK_USERS]
        args.run_time = int(os.environ.get("LOAD_SOAK_SECONDS", SOAK_SECONDS))
    else:
        steps = [int(n) for n in args.steps.split(",")] if args.steps else [args.users]
    label = args.label or ("soak" if args.soak else "steps" if args.steps else f"users{args.users}")
    out = LOAD_DIR / label
    out.mkdir(parents=True, exist_ok=True)
    env = stack_env(wait_seconds=args.wait, recycle=not args.soak)
    stack = Stack(env, out)
    # Figures from two machines compare only with their speed beside them (this VM's varies 2x by day).
    reference_ms = min(timeit.repeat("sum(range(10**6))", number=10, repeat=5)) / 10 * 1000
    print(
        f"load test: {', '.join(map(str, steps))} users, {args.run_time} s each (spawn {args.spawn_rate}/s, at most "
        f"{args.max_requests} requests); web :{env['WEB_PORT']}, emulator :{env['STRIPE_EMULATOR_PORT']}, "
        f"database {DATABASE}; {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.1f} before start, "
        f'`python -m timeit "sum(range(10**6))"` {reference_ms:.1f} ms; output {out}',
        flush=True,
    )
    results = []
    guard = _run_alone(DATABASE)
    try:
        stack.start()
        seed_data = seed(env, talkers=max(steps), listeners=200, session_listeners=400 * len(steps))
        for phase, users in enumerate(steps):
            stats, samples = run_locust(
                stack, seed_data, users=users, spawn_rate=args.spawn_rate, run_time=args.run_time,
                max_requests=args.max_requests, prefix=out / f"u{users}", phase=phase, phases=len(steps),
            )  # fmt: skip
            result = report(f"{users} users, {args.run_time} s", stats, samples, env)
            results.append((users, result, samples))
            if phase + 1 < len(steps):
                wait_drained(stack)
        restarts = stack.restarts()
    finally:
        stack.stop()
        guard.close()
    for line in restarts:
        print(f"!! restarted during the run: {line}")
    ok = not restarts and all(result["errors"] == 0 for _, result, _ in results)
    if len(results) > 1:
        knee_report(results)
    for users, result, _ in results:
        if users == 20:
            # Latencies with all 20 users running (the goal's load); errors over the whole run.
            steady = result.get("steady") or {
                "create_p99": result["create_p99"], "confirmed_p99": result["confirmed_p99"]
            }  # fmt: skip
            met = (
                result["errors"] == 0
                and steady["create_p99"] <= GOAL_CREATE_P99_MS
                and steady["confirmed_p99"] <= GOAL_CONFIRMED_P99_MS
            )
            print(
                f"\ngoals at 20 users (errors over the whole run, latencies with all 20 running): errors "
                f"{result['errors']} (0), create_booking p99 {steady['create_p99']:.0f} ms (≤ {GOAL_CREATE_P99_MS}), "
                f"payment → confirmed p99 {steady['confirmed_p99']:.0f} ms (≤ {GOAL_CONFIRMED_P99_MS}): "
                + ("met" if met else "NOT met")
                + f"; the whole run, ramp-up included: create_booking p99 {result['create_p99']:.0f} ms, "
                f"payment → confirmed p99 {result['confirmed_p99']:.0f} ms"
            )
    if args.soak:
        ok &= soak_report(results[0][2], float(os.environ.get("LOAD_SOAK_WARMUP_SECONDS", SOAK_WARMUP_SECONDS)))
    print(f"\nLocust CSV and HTML reports, logs: {out}")
    return 0 if ok else 1


def knee_report(results: list) -> None:
    print("\n=== steps ===")
    print(f"{'users':>5}{'req/s':>8}{'create p50':>11}{'create p99':>11}{'confirm p99':>12}{'errors':>7}  busiest")
    # Against the lowest p99 of the smaller steps: one slow request decides a short step's p99.
    knee, lowest = None, None
    for users, result, _ in results:
        cpu = result.get("cpu", {})
        busiest = ", ".join(f"{name} {value:.0f}%" for name, value in sorted(cpu.items(), key=lambda i: -i[1])[:3])
        print(
            f"{users:>5}{result['rps']:>8.1f}{result['create_p50']:>11.0f}{result['create_p99']:>11.0f}"
            f"{result['confirmed_p99']:>12.0f}{result['errors']:>7}  {busiest}, postgres "
            f"{result.get('cpu_postgres', 0):.0f}%, in flight {result.get('in_flight', 0):.1f}/{result.get('threads')}"
        )
        if knee is None and lowest is not None and result["create_p99"] >= 2 * lowest:
            knee = users
        lowest = min(result["create_p99"], lowest if lowest is not None else result["create_p99"])
    print(
        "knee (create_booking p99 at least double the lowest p99 of the smaller steps): "
        + (f"{knee} users" if knee else "not reached")
    )


if __name__ == "__main__":
    sys.exit(main())
