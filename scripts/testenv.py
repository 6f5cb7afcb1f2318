"""Test environment, loaded as an early pytest plugin (`-p scripts.testenv` in pyproject's addopts), so it
runs before pytest-django imports the settings, in the controller and in every xdist worker alike.

PostgreSQL and Redis when reachable (they are on dev machines and in CI), otherwise SQLite and an
embedded Redis.
"""

import atexit
import os

from scripts.services import reachable, start_embedded_redis

if "DATABASE_URL" not in os.environ:
    if reachable("127.0.0.1", 5432):
        os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/talkpay"
    else:
        os.environ["DATABASE_URL"] = "sqlite:///:memory:"

if "REDIS_URL" not in os.environ:
    if reachable("127.0.0.1", 6379):
        os.environ["TALKPAY_TEST_REDIS_BASE"] = "redis://127.0.0.1:6379"
    else:
        _redis, _url = start_embedded_redis()
        atexit.register(_redis.terminate)
        os.environ["TALKPAY_TEST_REDIS_BASE"] = _url.rsplit("/", 1)[0]

if "TALKPAY_TEST_REDIS_BASE" in os.environ:
    # One Redis database per xdist worker, so one process's Celery worker never takes another's tasks.
    # xdist's workers inherit the controller's environment, so this is decided again in each of them.
    _worker_number = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    os.environ["REDIS_URL"] = f"{os.environ['TALKPAY_TEST_REDIS_BASE']}/{15 - _worker_number}"

os.environ.setdefault("STRIPE_WEBHOOK_SECRET", "whsec_talkpay_test_secret")
os.environ.setdefault("BOOKING_PAYMENT_WAIT_SECONDS", "5")
os.environ.setdefault("API_THROTTLE_USER", "100000/min")
os.environ.setdefault("API_THROTTLE_ANON", "100000/min")
