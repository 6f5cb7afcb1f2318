from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    verbose_name = "Workers and schedules"

    def ready(self):
        # Task outcome counters and the worker's metrics server hang on Celery signals.
        from workers import metrics  # noqa: F401
