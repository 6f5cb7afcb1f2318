"""gunicorn settings for the web (used by `make run` and the containers): `gunicorn -c gunicorn.conf.py`.

Every value can be overridden by the environment (GUNICORN_*), e.g. GUNICORN_WORKERS=4.
"""

import os
import shutil
from pathlib import Path

from web.logs import gunicorn_access_logger_class


def _env(name: str, default: str) -> str:
    return os.environ.get(f"GUNICORN_{name}", default)


wsgi_app = "web.wsgi:application"
bind = _env("BIND", f"127.0.0.1:{os.environ.get('WEB_PORT', '8000')}")
workers = int(_env("WORKERS", "2"))
# gthread: keep-alive needs it (the sync worker closes every connection), and threads serve the
# bounded wait of create_booking without blocking the process.
worker_class = "gthread"
threads = int(_env("THREADS", "8"))
# Longer than the clients' idle keep-alive (Node's fetch/undici keeps sockets 4-5 s, browsers and
# load balancers up to 60 s): the client must be the side that closes an idle connection, or it
# reuses a socket gunicorn has just closed and sees "socket closed" (gunicorn's default is 2 s).
keepalive = int(_env("KEEPALIVE", "75"))
# A request running longer than this is killed: above BOOKING_PAYMENT_WAIT_SECONDS and the Stripe timeout.
timeout = int(_env("TIMEOUT", "30"))
graceful_timeout = int(_env("GRACEFUL_TIMEOUT", "20"))
# Recycle workers now and then, so a slow leak never grows without bound.
max_requests = int(_env("MAX_REQUESTS", "5000"))
max_requests_jitter = int(_env("MAX_REQUESTS_JITTER", "500"))
# Behind a proxy that sets X-Forwarded-*, list its address here.
forwarded_allow_ips = _env("FORWARDED_ALLOW_IPS", "127.0.0.1")

accesslog = _env("ACCESSLOG", "-")
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
logger_class = gunicorn_access_logger_class()

# Metrics of every worker process, added up at each scrape (web/metrics.py).
_metrics_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", str(Path(__file__).resolve().parent / ".run" / "prometheus" / "web")
)


def on_starting(server):
    # Files of a previous master's workers would be added to this one's counts.
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)


def post_worker_init(worker):
    # Django and the app are loaded: keep full collections off their objects (common.heap).
    from common.heap import heap_freeze_startup_objects

    heap_freeze_startup_objects()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
