"""Test environment, loaded as an early pytest plugin (`-p scripts.testenv` in pyproject's addopts), so it
runs before pytest-django imports the settings, in the controller and in every xdist worker alike.

PostgreSQL and Redis when reachable (they are on dev machines and in CI), otherwise SQLite and an
embedded Redis.

Two suites can share one machine: `TALKPAY_TEST_DATABASE_URL` picks the database (pytest-django adds
its `test_` prefix and the xdist suffix) and `TALKPAY_TEST_REDIS_DB` the highest Redis database number
this suite uses (each xdist worker takes one below it: 15, 14, ... by default).
"""

import atexit
import os

from scripts.services import RUN_DIR, reachable, start_embedded_redis
from web.secrets import throwaway_production_env

if os.environ.get("TALKPAY_TEST_DATABASE_URL"):
    os.environ["DATABASE_URL"] = os.environ["TALKPAY_TEST_DATABASE_URL"]
elif "DATABASE_URL" not in os.environ:
    if reachable("127.0.0.1", 5432):
        os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/talkpay"
    else:
        # A file, not memory: threads (worker, live server) then wait on SQLite's lock instead of failing.
        RUN_DIR.mkdir(exist_ok=True)
        os.environ["DATABASE_URL"] = f"sqlite:///{RUN_DIR / 'tests.sqlite3'}"

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
    _top = int(os.environ.get("TALKPAY_TEST_REDIS_DB", "15"))
    os.environ["REDIS_URL"] = f"{os.environ['TALKPAY_TEST_REDIS_BASE']}/{_top - _worker_number}"

# The suite chooses its own services; a `make run` going in this checkout must not leak in through .run/env.
os.environ["TALKPAY_IGNORE_RUN_ENV"] = "true"
os.environ.setdefault("BOOKING_PAYMENT_WAIT_SECONDS", "5")
# Tests that are about throttling set their own rates; the rest must never be throttled.
for _throttle in ("USER", "ANON", "AUTH", "BOOKING_CREATE"):
    os.environ.setdefault(f"API_THROTTLE_{_throttle}", "100000/min")

# Production settings need real-looking secrets (web/settings.py refuses committed ones): fresh ones per run,
# and plain HTTP for the test client and live servers.
for _name, _value in throwaway_production_env().items():
    os.environ.setdefault(_name, _value)
