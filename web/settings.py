"""Talkpay settings: twelve-factor, every knob an environment variable (see `.env.example`).

Defaults are the embedded development stack: SQLite, the Redis that `make run` starts,
and the Stripe emulator. Production sets DATABASE_URL, REDIS_URL and real Stripe keys.
"""

import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# Precedence: the process environment, then `.run/env` (what `make run` decided: database, Redis,
# emulator URL, keys, ports), then `.env`. So `manage.py anything` in a second terminal talks to the
# same emulator and Redis as the running stack. The test suite opts out (TALKPAY_IGNORE_RUN_ENV).
RUN_ENV_FILE = Path(env("TALKPAY_RUN_ENV_FILE", default=str(BASE_DIR / ".run" / "env")))
if not env.bool("TALKPAY_IGNORE_RUN_ENV", default=False) and RUN_ENV_FILE.exists():
    environ.Env.read_env(RUN_ENV_FILE, overwrite=False)
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# The secrets (SECRET_KEY, the JWT signing key, Stripe's) are read in the "Security" block at the end.
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
# The port `make run` serves the web on, and the address users reach it at; URLs handed to others
# (Connect onboarding return pages, the admin link `seed_demo` prints) are derived from it.
WEB_PORT = env.int("WEB_PORT", default=8000)
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default=f"http://127.0.0.1:{WEB_PORT}").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "axes",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "web",
    "workers",
    "booking",
    "billing",
    "payouts",
    "subscriptions",
]

MIDDLEWARE = [
    "web.logs.RequestIdMiddleware",
    "web.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "web.middleware.ApiResponseMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "axes.middleware.AxesMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "web.urls"
WSGI_APPLICATION = "web.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / '.run' / 'talkpay.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite serialises writers; wait for the lock instead of failing when web and worker write together.
    # Take the write lock when a transaction begins, so two writers queue instead of deadlocking.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 30, "transaction_mode": "IMMEDIATE"})
    if DATABASES["default"]["NAME"] != ":memory:":
        # Tests get a file database beside it (Django's default would be in memory, shared-cache,
        # where concurrent threads fail on table locks instead of waiting).
        _name = Path(DATABASES["default"]["NAME"])
        _name.parent.mkdir(parents=True, exist_ok=True)
        DATABASES["default"]["TEST"] = {"NAME": str(_name.with_name(f"test_{_name.name}"))}
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "web.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
# Without `collectstatic` (development, tests) files come from the finders; the missing STATIC_ROOT is expected.
warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)

# --- API -------------------------------------------------------------------------------------------

REST_FRAMEWORK: dict[str, Any] = {
    # simplejwt's, refusing tokens issued before the user's last password change or revocation.
    "DEFAULT_AUTHENTICATION_CLASSES": ["web.tokens.StampedJWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["web.api.parsers.SafeJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 20,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "web.api.errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "user": env("API_THROTTLE_USER", default="6000/min"),
        "anon": env("API_THROTTLE_ANON", default="600/min"),
        "stripe_webhook": env("API_THROTTLE_WEBHOOK", default="60000/min"),
        # sign-in, refresh and register, per client address
        "auth": env("API_THROTTLE_AUTH", default="20/min"),
        "booking_create": env("API_THROTTLE_BOOKING_CREATE", default="30/hour"),
    },
    # Counted in Redis, shared by every web process (CACHES["throttle"] below).
    "DEFAULT_THROTTLE_CLASSES": ["web.api.throttling.UserThrottle", "web.api.throttling.AnonThrottle"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=30)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Talkpay API",
    "DESCRIPTION": "Payments backend of the Talkpay marketplace: packages, bookings, payments, payouts.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Served from the drf-spectacular-sidecar package, so the docs page needs no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # System fonts: the Redoc page (web/templates/web/redoc.html) loads nothing from a CDN.
    "REDOC_UI_SETTINGS": {
        "theme": {
            "typography": {
                "fontFamily": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
                "headings": {"fontFamily": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"},
                "code": {"fontFamily": "ui-monospace, SFMono-Regular, Menlo, monospace"},
            }
        }
    },
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "web.api.schema.add_error_responses"],
    "ENUM_NAME_OVERRIDES": {
        "BookingStatusEnum": "booking.models.Booking.Status",
        "PaymentStatusEnum": "billing.models.Payment.Status",
        "PayoutStatusEnum": "payouts.models.Payout.Status",
        "EarningStatusEnum": "payouts.models.ListenerPayout.Status",
    },
}

# --- Email: notifications sent by the workers (workers/notify.py) ------------------------------------

# The console in development (messages appear in the worker's log); SMTP in production (EMAIL_HOST...).
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Talkpay <no-reply@talkpay.example>")
# Who hears about disputes (comma separated).
OPERATIONS_EMAILS = env.list("OPERATIONS_EMAILS", default=["operations@talkpay.example"])

# When set, /api/metrics/ requires `Authorization: Bearer <METRICS_TOKEN>` (Prometheus' bearer_token).
METRICS_TOKEN = env("METRICS_TOKEN", default="")

CACHES: dict[str, dict[str, Any]] = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    }
}

# --- Celery ----------------------------------------------------------------------------------------

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=REDIS_URL)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# django-celery-beat's database scheduler, writing beat's heartbeat on every tick.
CELERY_BEAT_SCHEDULER = "workers.beat:HeartbeatScheduler"
# Publishing must not hang a web request when the broker is down: fail fast, the sweeper recovers.
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=2.0)
CELERY_TASK_PUBLISH_RETRY = env.bool("CELERY_TASK_PUBLISH_RETRY", default=False)
# Every Redis socket operation is bounded (a frozen Redis accepts connections and never answers), and a
# publish reconnects at most this many more times: a booking is answered in well under a second with
# the broker down (workers.celery). A local Redis answers in a millisecond; these are for its absence.
CELERY_BROKER_SOCKET_TIMEOUT = env.float("CELERY_BROKER_SOCKET_TIMEOUT", default=0.25)
CELERY_BROKER_SOCKET_CONNECT_TIMEOUT = env.float("CELERY_BROKER_SOCKET_CONNECT_TIMEOUT", default=0.25)
CELERY_BROKER_PUBLISH_MAX_RETRIES = env.int("CELERY_BROKER_PUBLISH_MAX_RETRIES", default=1)
# Worker processes (not in front of a client) wait longer on each Redis operation.
CELERY_WORKER_BROKER_SOCKET_TIMEOUT = env.float("CELERY_WORKER_BROKER_SOCKET_TIMEOUT", default=5.0)
# Task time limits: SoftTimeLimitExceeded at the soft limit (the task's retry or its sweeper takes
# over), the pool process is killed at the hard one. Payout runs (many transfers) get the long limit,
# which also sizes the broker's visibility timeout (workers.celery): 15 minutes, so a run of 100,000
# listeners (about 5.5 min in `bench/payout_bench.py`) ends inside it with room to spare.
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=60)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=90)
CELERY_LONG_TASK_TIME_LIMIT = env.int("CELERY_LONG_TASK_TIME_LIMIT", default=900)
# Tasks a worker runs on one database connection before reopening it (Celery's default: reopen per task).
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=100)
# Off unless asked: Flower turns them on while it runs (workers.celery).
CELERY_WORKER_SEND_TASK_EVENTS = env.bool("CELERY_WORKER_SEND_TASK_EVENTS", default=False)

# --- Stripe ----------------------------------------------------------------------------------------

STRIPE_SECRET_KEY = env("STRIPE_SECRET_KEY", default="sk_test_talkpay_emulator")
STRIPE_PUBLISHABLE_KEY = env("STRIPE_PUBLISHABLE_KEY", default="pk_test_talkpay_emulator")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="whsec_talkpay_emulator_dev_secret")
# Extra secrets accepted during a rotation (comma separated).
STRIPE_WEBHOOK_SECRETS_OLD = env.list("STRIPE_WEBHOOK_SECRETS_OLD", default=[])
# Stripe sends connected accounts' events (account.updated, their payout.*) only to a Connect endpoint,
# which has its own signing secret; both endpoints point at the same URL, which accepts either secret.
STRIPE_CONNECT_WEBHOOK_SECRET = env(
    "STRIPE_CONNECT_WEBHOOK_SECRET", default="whsec_talkpay_emulator_connect_dev_secret"
)
STRIPE_CONNECT_WEBHOOK_SECRETS_OLD = env.list("STRIPE_CONNECT_WEBHOOK_SECRETS_OLD", default=[])
STRIPE_WEBHOOK_TOLERANCE = env.int("STRIPE_WEBHOOK_TOLERANCE", default=300)
# Base URL of the Stripe emulator. Empty means the real Stripe API, but only with a real key: the
# emulator's own key never goes to api.stripe.com, so an empty value left in `.env` cannot switch to Stripe.
STRIPE_EMULATOR_KEY = "sk_test_talkpay_emulator"
STRIPE_API_BASE = env("STRIPE_API_BASE", default="")
if not STRIPE_API_BASE and STRIPE_SECRET_KEY == STRIPE_EMULATOR_KEY:
    STRIPE_API_BASE = f"http://127.0.0.1:{env.int('STRIPE_EMULATOR_PORT', default=12111)}"
STRIPE_CURRENCY = env("STRIPE_CURRENCY", default="usd").lower()
if not (len(STRIPE_CURRENCY) == 3 and STRIPE_CURRENCY.isalpha()):
    raise ImproperlyConfigured(f"STRIPE_CURRENCY must be a three-letter ISO code, not {STRIPE_CURRENCY!r}")
# Each Stripe call waits at most this long for an answer (the SDK's HTTP client), and the SDK retries
# a network failure this many times: a hung Stripe holds a task at most ~2 x 8 s before the task's own
# backoff takes over, well inside CELERY_TASK_SOFT_TIME_LIMIT.
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=8.0)
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=1)

# --- Business rules --------------------------------------------------------------------------------

# How long create_booking waits for the worker to create the PaymentIntent before answering 202. The
# worker's commit wakes it (billing.intent_ready), so this bounds only how long a web thread is held
# when the workers are behind; the client then polls (202), which holds no thread between polls.
BOOKING_PAYMENT_WAIT_SECONDS = env.float("BOOKING_PAYMENT_WAIT_SECONDS", default=1.0)
# Idempotency-Key (web/idempotency.py): a retry waits this long for the first request's transaction, and
# takes over a claim left unanswered this long (its request died before committing anything).
IDEMPOTENCY_LOCK_WAIT_SECONDS = env.float("IDEMPOTENCY_LOCK_WAIT_SECONDS", default=5.0)
IDEMPOTENCY_LEASE_SECONDS = env.float("IDEMPOTENCY_LEASE_SECONDS", default=5.0)
# A pending booking not paid within this many minutes is cancelled and frees the listener's slot.
BOOKING_PENDING_EXPIRY_MINUTES = env.int("BOOKING_PENDING_EXPIRY_MINUTES", default=30)
# Work recorded but not picked up (PaymentIntents, refunds, clawbacks) is re-enqueued by its sweeper after this.
OUTBOX_RESEND_AFTER_SECONDS = env.int("OUTBOX_RESEND_AFTER_SECONDS", default=30)
# A pending webhook event whose message is this overdue (never picked up after it arrived, or not
# retried after its scheduled retry) is enqueued again by the sweeper, which runs every minute: a lost
# event is processed within 45 + 60 s, inside two minutes.
WEBHOOK_SWEEP_AFTER_SECONDS = env.int("WEBHOOK_SWEEP_AFTER_SECONDS", default=45)
# Payments in a non-final Stripe state longer than this are reconciled against Stripe.
PAYMENT_RECONCILE_AFTER_SECONDS = env.int("PAYMENT_RECONCILE_AFTER_SECONDS", default=900)
# Earnings become payable this long after the session is completed: time for the talker to report a
# session that did not happen before the money leaves (a dispute after the payout becomes a debt).
PAYOUT_HOLD_HOURS = env.int("PAYOUT_HOLD_HOURS", default=72)
PAYOUT_MINIMUM_CENTS = env.int("PAYOUT_MINIMUM_CENTS", default=1000)
# A payout marked sent but not confirmed this long ago is looked up on Stripe and resent by the sweeper.
# Safe to be short: the resend looks the transfer up by its transfer_group first and reuses the
# idempotency key, so it never pays twice; it must only outlast one transfer call (2 x STRIPE_TIMEOUT_SECONDS).
PAYOUT_RESEND_AFTER_SECONDS = env.int("PAYOUT_RESEND_AFTER_SECONDS", default=60)
# Transfers a payout run sends to Stripe at the same time.
PAYOUT_TRANSFER_CONCURRENCY = env.int("PAYOUT_TRANSFER_CONCURRENCY", default=4)
# Where Stripe Connect onboarding sends the listener back: the web app's pages (web/frontend.py).
CONNECT_REFRESH_URL = env("CONNECT_REFRESH_URL", default=f"{PUBLIC_BASE_URL}/connect/refresh")
CONNECT_RETURN_URL = env("CONNECT_RETURN_URL", default=f"{PUBLIC_BASE_URL}/connect/return")
# Cancellation policy: a talker cancelling at least FULL hours before gets everything back,
# later (but before the start) gets LATE percent, after the start nothing.
CANCEL_FULL_REFUND_HOURS = env.int("CANCEL_FULL_REFUND_HOURS", default=24)
CANCEL_LATE_REFUND_PERCENT = env.int("CANCEL_LATE_REFUND_PERCENT", default=50)

# One JSON object per line (web/logs.py), with the request id and the booking/payment/payout ids;
# LOG_FORMAT=plain for a human-readable line instead.
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "workers.logs.JsonFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": env("LOG_FORMAT", default="json")}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's default config gives these their own plain console handler; one JSON line is enough.
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "django.server": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "django.db.backends": {"level": "WARNING"},
        # The SDK logs every call at INFO ("message='Request to Stripe api'"); our gateway logs what matters.
        "stripe": {"level": env("STRIPE_LOG_LEVEL", default="WARNING")},
    },
}

# --- Security: secrets, transport, brute force (issue 11) ------------------------------------------
# Development (DEBUG on) may fall back to the values below; with DEBUG off none of them is accepted and
# the process refuses to start, naming every missing or committed secret (see README, "Security").

DEV_SECRET_KEY = "dev-insecure-talkpay-secret-key"
DEV_JWT_SIGNING_KEY = "dev-insecure-talkpay-jwt-signing-key"
# Every secret value ever committed to this repository: refused in production even when set explicitly.
COMMITTED_SECRETS = frozenset(
    {
        DEV_SECRET_KEY,
        DEV_JWT_SIGNING_KEY,
        "dev-insecure-talkpay-secret-key-change-me-in-production",
        "change-me",
        "build",
        "sk_test_talkpay_emulator",
        "pk_test_talkpay_emulator",
        "whsec_talkpay_emulator_dev_secret",
        "whsec_talkpay_emulator_connect_dev_secret",
        "whsec_compose_emulator_secret",
        "whsec_talkpay_test_secret",
    }
)
SECRET_KEY = env("DJANGO_SECRET_KEY", default=DEV_SECRET_KEY if DEBUG else "")
# Signs the API's JWTs. Its own key, so rotating it logs API clients out without touching Django's signing.
JWT_SIGNING_KEY = env("JWT_SIGNING_KEY", default=DEV_JWT_SIGNING_KEY if DEBUG else "")
SIMPLE_JWT["SIGNING_KEY"] = JWT_SIGNING_KEY

if not DEBUG:
    from web.secrets import insecure_settings

    _insecure = insecure_settings(
        {
            "DJANGO_SECRET_KEY": SECRET_KEY,
            "JWT_SIGNING_KEY": JWT_SIGNING_KEY,
            "STRIPE_SECRET_KEY": STRIPE_SECRET_KEY,
            "STRIPE_PUBLISHABLE_KEY": STRIPE_PUBLISHABLE_KEY,
            "STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
            "STRIPE_CONNECT_WEBHOOK_SECRET": STRIPE_CONNECT_WEBHOOK_SECRET,
        },
        committed=COMMITTED_SECRETS,
    )
    _insecure += [
        f"{name} holds a value committed to the repository"
        for name, olds in (
            ("STRIPE_WEBHOOK_SECRETS_OLD", STRIPE_WEBHOOK_SECRETS_OLD),
            ("STRIPE_CONNECT_WEBHOOK_SECRETS_OLD", STRIPE_CONNECT_WEBHOOK_SECRETS_OLD),
        )
        if any(old in COMMITTED_SECRETS for old in olds)
    ]
    if _insecure:
        raise ImproperlyConfigured(
            "Refusing to start with DJANGO_DEBUG off: " + "; ".join(_insecure) + ". See README, Security."
        )

# Reverse proxies in front of the web (load balancer, ingress) that append to X-Forwarded-For. The client
# address is the one the outermost trusted proxy saw; 0 means REMOTE_ADDR, and the header is ignored.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
REST_FRAMEWORK["NUM_PROXIES"] = TRUSTED_PROXY_COUNT
if TRUSTED_PROXY_COUNT:
    # The proxy terminates TLS and says so; without a trusted proxy the header could be forged.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# HTTPS everywhere in production. Each can be turned off (e.g. the test suite speaks plain HTTP).
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# Health probes come from inside the network, over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^api/health/"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Request bodies above this many bytes answer 413 (JSON under /api/); nothing legitimate is near it.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)

# Brute force: django-axes locks a username, and separately a client address, after AXES_FAILURE_LIMIT
# failed sign-ins (admin and the token endpoint) for AXES_COOLOFF_MINUTES.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "web.api.client_ip.client_ip"
AXES_LOCKOUT_CALLABLE = "web.api.auth.lockout_response"
AXES_USERNAME_CALLABLE = "web.api.auth.lockout_username"
AXES_VERBOSE = False

# Throttles count in Redis, shared by every web process; when Redis is down they count per process
# instead of failing the request (web.cache.FallbackRedisCache).
CACHES["throttle"] = {
    "BACKEND": "web.cache.FallbackRedisCache",
    "LOCATION": env("THROTTLE_REDIS_URL", default=REDIS_URL),
    "KEY_PREFIX": "talkpay-throttle",
    "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.25},
}
# How far ahead a session can be booked (bounds every date the API accepts).
BOOKING_MAX_DAYS_AHEAD = env.int("BOOKING_MAX_DAYS_AHEAD", default=365)

# Sessions (issue 11): a confirmed session starts from EARLY minutes before scheduled_at to LATE minutes
# after; it completes once it ran MIN_RUN_PERCENT of its booked minutes or its scheduled end has come.
SESSION_START_EARLY_MINUTES = env.int("SESSION_START_EARLY_MINUTES", default=15)
SESSION_START_LATE_MINUTES = env.int("SESSION_START_LATE_MINUTES", default=30)
SESSION_MIN_RUN_PERCENT = env.int("SESSION_MIN_RUN_PERCENT", default=50)
# Unpaid bookings a talker may hold at once (each holds a slot for BOOKING_PENDING_EXPIRY_MINUTES).
BOOKING_PENDING_MAX_PER_TALKER = env.int("BOOKING_PENDING_MAX_PER_TALKER", default=3)

# Subscriptions (subscriptions/): how many future occurrences of a standing slot stay reserved.
SUBSCRIPTION_RESERVE_AHEAD = env.int("SUBSCRIPTION_RESERVE_AHEAD", default=4)
