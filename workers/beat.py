"""Beat's scheduler: django-celery-beat's database scheduler, writing beat's heartbeat (workers.health)."""

import time

from django_celery_beat.schedulers import DatabaseScheduler

from workers.health import INTERVAL_SECONDS, heartbeat_write


class HeartbeatScheduler(DatabaseScheduler):
    """django-celery-beat's scheduler, beating on every tick (beat ticks at least every 5 s)."""

    _last_beat = 0.0

    def tick(self, *args, **kwargs):
        if time.monotonic() - self._last_beat >= INTERVAL_SECONDS:
            heartbeat_write("beat")
            self._last_beat = time.monotonic()
        return min(super().tick(*args, **kwargs), INTERVAL_SECONDS)
