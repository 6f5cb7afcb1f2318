"""`make fuzz`: schemathesis against a live Talkpay with the production settings (DEBUG off).

Starts its own stack in `.run/fuzz/` (a fresh SQLite database, an embedded Redis, the Stripe emulator,
gunicorn and one Celery worker), registers a talker, and lets schemathesis generate requests from the
served OpenAPI schema, signed in as that talker. It fails on any 5xx, on any status code the schema does
not declare, and on a non-JSON answer. Bounded: FUZZ_MAX_EXAMPLES cases per operation (default 100) and a
fixed seed (FUZZ_SEED), so a run takes minutes and is repeatable.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from scripts.services import RUN_DIR, free_port, start_embedded_redis
from web.secrets import throwaway_production_env

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FUZZ_DIR = RUN_DIR / "fuzz"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance"


def _wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _schemathesis(base: str, access: str, role: str) -> list[str]:
    return [
        str(BIN / "schemathesis"),
        "run",
        f"{base}/api/schema/",
        "--checks",
        CHECKS,
        "--max-examples",
        os.environ.get("FUZZ_MAX_EXAMPLES", "100"),
        "--seed",
        os.environ.get("FUZZ_SEED", "1"),
        "--phases",
        "examples,coverage,fuzzing",
        "--generation-database",
        "none",
        "--workers",
        "2",
        "--request-timeout",
        "30",
        "--suppress-health-check",
        "all",
        "--no-color",
        "-H",
        f"Authorization: Bearer {access}",
        # Logging out or changing the password would revoke the token mid-run and leave the rest of
        # the run unauthenticated; both are covered by the test suite.
        "--exclude-path",
        "/api/auth/logout/",
        "--exclude-path",
        "/api/auth/password/",
        "--report",
        "junit",
        "--report-dir",
        str(FUZZ_DIR / role),
    ]


def main() -> int:
    from stripe_emulator.testing import EmulatorProcess

    shutil.rmtree(FUZZ_DIR, ignore_errors=True)
    FUZZ_DIR.mkdir(parents=True)
    processes: list[subprocess.Popen] = []
    redis, redis_url = start_embedded_redis(workdir=FUZZ_DIR / "redis")
    processes.append(redis)
    web_port = free_port()
    production = throwaway_production_env()
    webhook_secret = production["STRIPE_WEBHOOK_SECRET"]
    emulator = EmulatorProcess(
        quiet=True,
        webhook_url=f"http://127.0.0.1:{web_port}/api/payment/stripe/webhook/",
        webhook_secret=webhook_secret,
        log_path=str(FUZZ_DIR / "emulator.log"),
    ).start()
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "web.settings",
        "DJANGO_DEBUG": "false",
        **production,
        "STRIPE_API_BASE": emulator.url,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"sqlite:///{FUZZ_DIR / 'talkpay.sqlite3'}",
        "REDIS_URL": redis_url,
        "BOOKING_PAYMENT_WAIT_SECONDS": "1",
        # The fuzzer is one client sending thousands of requests: throttles and lockouts would only
        # answer 429 (documented) and hide the operations behind them.
        "API_THROTTLE_USER": "1000000/min",
        "API_THROTTLE_ANON": "1000000/min",
        "API_THROTTLE_AUTH": "1000000/min",
        "API_THROTTLE_BOOKING_CREATE": "1000000/min",
        "AXES_FAILURE_LIMIT": "1000000",
        "LOG_LEVEL": "ERROR",
        "PYTHONUNBUFFERED": "1",
    }
    web_log = open(FUZZ_DIR / "web.log", "w")
    try:
        manage = [sys.executable, str(ROOT / "manage.py")]
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, cwd=ROOT, check=True)
        subprocess.run([*manage, "seed_demo", "--no-users"], env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        processes.append(
            subprocess.Popen(
                [str(BIN / "gunicorn"), "web.wsgi:application", "--bind", f"127.0.0.1:{web_port}"]
                + ["--workers", "2", "--threads", "4", "--timeout", "60"],
                env=env,
                cwd=ROOT,
                stdout=web_log,
                stderr=web_log,
            )
        )
        processes.append(
            subprocess.Popen(
                [str(BIN / "celery"), "-A", "workers", "worker", "-l", "WARNING", "--concurrency", "1", "-P", "threads"]
                + ["-Q", "stripe,payments,webhooks,payouts,maintenance"],
                env=env,
                cwd=ROOT,
                stdout=web_log,
                stderr=web_log,
            )
        )
        base = f"http://127.0.0.1:{web_port}"
        _wait_http(f"{base}/api/health/")
        worst = 0
        # Once per role: listener-only operations answer a talker 403 and would go untested.
        for role in ("talker", "listener"):
            password = secrets.token_urlsafe(16)
            user = {"username": f"fuzz-{role}", "password": password, "email": f"{role}@example.com", "role": role}
            _post(f"{base}/api/auth/register/", user)
            access = _post(f"{base}/api/auth/token/", {"username": user["username"], "password": password})["access"]
            print(f"\n=== schemathesis as a {role} ===", flush=True)
            code = subprocess.run(_schemathesis(base, access, role), cwd=ROOT).returncode
            worst = worst or code
        return worst
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        emulator.stop()
        web_log.close()


if __name__ == "__main__":
    sys.exit(main())
