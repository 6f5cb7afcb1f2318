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


def test_ordering_is_health_checked_and_long_running_services_restart():
    for name in ("web", "worker-payments", "worker-webhooks", "worker-payouts", "beat", "flower", "emulator"):
        assert SERVICES[name]["restart"] == "unless-stopped", name
    assert SERVICES["web"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert SERVICES["web"]["depends_on"]["emulator"]["condition"] == "service_healthy"
    assert SERVICES["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    for name in ("web", "worker-payments", "worker-webhooks", "worker-payouts", "emulator", "postgres", "redis"):
        assert "healthcheck" in SERVICES[name], name


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
