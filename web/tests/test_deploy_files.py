"""Item 5: what compose.yaml, the Dockerfile and .dockerignore ship (no Docker engine needed to read them)."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "compose.yaml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
APP_SERVICES = [name for name, service in SERVICES.items() if service.get("image") == "talkpay:latest"]


def test_no_demo_credentials_and_no_wildcard_hosts():
    assert "talkpay-demo" not in COMPOSE_TEXT
    assert '"*"' not in COMPOSE_TEXT
    for name in APP_SERVICES:
        assert SERVICES[name]["environment"]["DJANGO_ALLOWED_HOSTS"].startswith("${DJANGO_ALLOWED_HOSTS:?")


def test_every_secret_is_required_and_none_has_a_default():
    required = ["DJANGO_SECRET_KEY", "JWT_SIGNING_KEY", "STRIPE_SECRET_KEY", "STRIPE_PUBLISHABLE_KEY"]
    required += ["STRIPE_WEBHOOK_SECRET", "STRIPE_CONNECT_WEBHOOK_SECRET"]
    for name in APP_SERVICES:
        environment = SERVICES[name]["environment"]
        if "profiles" not in SERVICES[name]:
            assert environment["DJANGO_DEBUG"] == "false", name
        for secret in required:
            assert environment[secret].startswith("${" + secret + ":?"), (name, secret)
    assert not re.search(r"(SECRET|PASSWORD|KEY)[A-Z_]*:-[^}]", COMPOSE_TEXT)
    assert SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")


def test_the_emulator_and_demo_data_exist_only_in_the_dev_profile():
    assert SERVICES["emulator"]["profiles"] == ["dev"]
    assert SERVICES["seed"]["profiles"] == ["dev"]
    assert "seed_demo" not in SERVICES["migrate"]["command"]
    for name, service in SERVICES.items():
        if "profiles" not in service:
            assert "emulator" not in str(service.get("command", "")), name


def test_published_ports_listen_on_localhost_only_and_flower_needs_basic_auth():
    for name, service in SERVICES.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    assert SERVICES["flower"]["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")


ONE_SHOT = {"migrate", "seed"}
WORKERS = [name for name in SERVICES if name.startswith("worker-")]


def test_every_long_running_service_is_health_checked_and_restarts():
    for name, service in SERVICES.items():
        if name in ONE_SHOT:
            assert service["restart"] == "no", name
            continue
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["test"], name
        assert service["healthcheck"].get("retries"), name


def test_start_order_waits_on_health_and_on_the_migrations():
    conditions = {"service_healthy", "service_completed_successfully"}
    for name, service in SERVICES.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert dependency in SERVICES, (name, dependency)
            assert rule["condition"] in conditions, (name, dependency)
            expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert rule["condition"] == expected, (name, dependency)
            assert dependency not in ONE_SHOT or SERVICES[dependency]["restart"] == "no"
    assert SERVICES["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert SERVICES["migrate"]["depends_on"]["redis"] == {"condition": "service_healthy"}
    # The emulator exists only in the dev profile: waited for when it is there, not required otherwise.
    assert SERVICES["migrate"]["depends_on"]["emulator"] == {"condition": "service_healthy", "required": False}
    for name in ("web", "beat", *WORKERS):
        assert SERVICES[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name
    assert SERVICES["web"]["depends_on"]["emulator"]["condition"] == "service_healthy"


def test_the_emulator_is_health_checked_in_the_dev_profile():
    emulator = SERVICES["emulator"]
    assert emulator["profiles"] == ["dev"]
    assert "/_emulator/health" in " ".join(emulator["healthcheck"]["test"])


def test_web_runs_gunicorn_with_its_config_and_is_checked_on_the_liveness_endpoint():
    web = SERVICES["web"]
    assert web["command"].split() == ["gunicorn", "-c", "gunicorn.conf.py"]
    assert web["environment"]["GUNICORN_BIND"] == "0.0.0.0:8000"
    assert "http://127.0.0.1:8000/api/health/" in " ".join(web["healthcheck"]["test"])


def test_workers_and_beat_are_checked_by_their_heartbeats():
    for name in WORKERS:
        assert SERVICES[name]["healthcheck"]["test"] == [
            "CMD",
            "python",
            "-m",
            "workers.health",
            "worker",
            "--this-host",
        ], name
        # --this-host matches `<queue>@<container hostname>`
        assert re.search(r"-n \w+@%h", SERVICES[name]["command"]), name
    assert SERVICES["beat"]["healthcheck"]["test"] == ["CMD", "python", "-m", "workers.health", "beat"]


def test_exactly_one_beat_with_the_scheduler_that_writes_its_heartbeat():
    from django.conf import settings

    beats = [name for name, service in SERVICES.items() if " beat" in str(service.get("command", ""))]
    assert beats == ["beat"]
    assert "deploy" not in SERVICES["beat"]  # no replicas
    scheduler = re.search(r"-S (\S+)", SERVICES["beat"]["command"]).group(1)
    assert scheduler == settings.CELERY_BEAT_SCHEDULER == "workers.beat:HeartbeatScheduler"


def test_one_worker_service_per_queue_covers_every_queue():
    from workers.celery import QUEUES

    consumed = []
    for name, service in SERVICES.items():
        if name.startswith("worker-"):
            consumed += re.search(r"-Q (\S+)", service["command"]).group(1).split(",")
    assert sorted(consumed) == sorted(QUEUES)


def test_the_image_runs_as_a_non_root_user():
    users = re.findall(r"^USER\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert users and users[-1] not in {"root", "0"}


def test_the_build_context_leaves_out_secrets_state_and_history():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".env", ".run/", ".venv/", ".git/"):
        assert entry in ignored


def test_seed_demo_refuses_its_published_passwords_with_debug_off(settings, db):
    from django.core.management import CommandError, call_command

    from web.models import User

    settings.DEBUG = False
    with pytest.raises(CommandError, match="DJANGO_DEBUG"):
        call_command("seed_demo")
    assert not User.objects.exists()
