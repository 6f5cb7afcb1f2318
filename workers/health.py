"""Heartbeats of the worker and of beat, kept in Redis where the web's readiness check and the
containers' health checks read them.

- The worker writes `talkpay:heartbeat:worker:<hostname>` from its own event loop's timer (a bootstep),
  so a worker whose loop is stuck stops beating even while its process is alive.
- Beat writes `talkpay:heartbeat:beat` on its scheduler's ticks (`workers.beat.HeartbeatScheduler`).
- `python -m workers.health worker|beat` exits 0 when the heartbeat is fresh (compose's healthcheck);
  `worker --this-host` counts only workers of this host (node names `<anything>@<hostname>`, as
  `-n payments@%h` gives), so a container is healthy by its own worker, not by another's.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import socket
import sys
import time

import redis
from celery import bootsteps

logger = logging.getLogger(__name__)

KEY_PREFIX = "talkpay:heartbeat:"
INTERVAL_SECONDS = float(os.environ.get("WORKER_HEARTBEAT_SECONDS", "10"))
# A heartbeat older than this means the process is gone or stuck.
MAX_AGE_SECONDS = float(os.environ.get("WORKER_HEARTBEAT_MAX_AGE_SECONDS", "60"))


def _client() -> redis.Redis:
    from django.conf import settings

    return redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2)


def heartbeat_write(role: str, name: str = "") -> None:
    key = f"{KEY_PREFIX}{role}" + (f":{name}" if name else "")
    try:
        _client().set(key, str(time.time()), ex=int(MAX_AGE_SECONDS * 2))
    except redis.RedisError as error:
        logger.warning("heartbeat not written", extra={"heartbeat": key, "error": str(error)})


def heartbeat_ages(role: str) -> dict[str, float]:
    """Seconds since each `role` process last beat, by key; raises redis.RedisError when Redis is down."""
    client = _client()
    keys = list(client.scan_iter(match=f"{KEY_PREFIX}{role}*", count=100))
    now = time.time()
    ages = {}
    for key, value in zip(keys, client.mget(keys) if keys else [], strict=True):
        if value is not None:
            ages[key.decode()] = now - float(value)
    return ages


class WorkerHeartbeat(bootsteps.StartStopStep):
    """Beats from the worker's timer; added to the app's worker blueprint in workers.celery."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        self.tref = None

    def start(self, worker):
        heartbeat_write("worker", worker.hostname)
        self.tref = worker.timer.call_repeatedly(INTERVAL_SECONDS, heartbeat_write, ("worker", worker.hostname))

    def stop(self, worker):
        if self.tref is not None:
            self.tref.cancel()


def check(role: str, hostname: str = "") -> tuple[bool, str]:
    """`hostname`: only the processes whose name matches it (a glob, e.g. `*@web-1`)."""
    try:
        ages = heartbeat_ages(role)
    except redis.RedisError as error:
        return False, f"redis unreachable: {error}"
    if hostname:
        ages = {key: age for key, age in ages.items() if fnmatch.fnmatchcase(key, f"{KEY_PREFIX}{role}:{hostname}")}
    fresh = {key: age for key, age in ages.items() if age <= MAX_AGE_SECONDS}
    if not fresh:
        which = f" matching {hostname}" if hostname else ""
        return False, f"no {role} heartbeat{which} in the last {MAX_AGE_SECONDS:.0f} s"
    return True, ", ".join(f"{key} {age:.0f} s ago" for key, age in sorted(fresh.items()))


def main(argv: list[str]) -> int:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")
    django.setup()
    role = argv[0] if argv else "worker"
    if role not in ("worker", "beat"):
        print("usage: python -m workers.health worker|beat [--this-host]", file=sys.stderr)
        return 2
    hostname = f"*@{socket.gethostname()}" if role == "worker" and "--this-host" in argv else ""
    ok, detail = check(role, hostname)
    print(("ok " if ok else "FAIL ") + detail)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
