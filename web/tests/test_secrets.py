"""Item 1 and 10 of the security issue: production refuses committed or missing secrets, passes
`check --deploy` when configured, and a token signed with any committed default is refused."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
from django.conf import settings

from web.tests.factories import TalkerFactory

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {"PATH": os.environ["PATH"], "DATABASE_URL": "sqlite:///:memory:", "DJANGO_DEBUG": "false", **env}
    # A `make run` in this checkout leaves its development secrets in .run/env: not this test's subject.
    clean["TALKPAY_IGNORE_RUN_ENV"] = "true"
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


PRODUCTION = {
    "DJANGO_SECRET_KEY": "q" * 10 + "production-secret-key-with-enough-entropy-0123456789",
    "JWT_SIGNING_KEY": "jwt-signing-key-for-production-0123456789",
    # Made up per run, so no key-shaped value sits in the repository.
    "STRIPE_SECRET_KEY": "sk_" + "live_" + secrets.token_hex(12),
    "STRIPE_PUBLISHABLE_KEY": "pk_" + "live_" + secrets.token_hex(12),
    "STRIPE_WEBHOOK_SECRET": "whsec_productionendpointsecret01",
    "STRIPE_CONNECT_WEBHOOK_SECRET": "whsec_productionconnectsecret02",
    "DJANGO_ALLOWED_HOSTS": "api.talkpay.example",
    "TRUSTED_PROXY_COUNT": "1",
}


def test_debug_off_without_secrets_refuses_to_start_naming_each_missing_one():
    result = _manage("check", "--deploy")

    assert result.returncode != 0
    for name in (
        "DJANGO_SECRET_KEY",
        "JWT_SIGNING_KEY",
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "STRIPE_CONNECT_WEBHOOK_SECRET",
    ):
        assert name in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DJANGO_SECRET_KEY", "dev-insecure-talkpay-secret-key-change-me-in-production"),
        ("STRIPE_SECRET_KEY", "sk_test_talkpay_emulator"),
        ("STRIPE_PUBLISHABLE_KEY", "pk_test_talkpay_emulator"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_compose_emulator_secret"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_talkpay_emulator_dev_secret"),
        ("STRIPE_SECRET_KEY", "sk_test_x"),
        ("STRIPE_WEBHOOK_SECRETS_OLD", "whsec_talkpay_emulator_dev_secret"),
        ("STRIPE_CONNECT_WEBHOOK_SECRET", "whsec_talkpay_emulator_connect_dev_secret"),
        ("STRIPE_CONNECT_WEBHOOK_SECRET", "whsec_x"),
        ("STRIPE_CONNECT_WEBHOOK_SECRETS_OLD", "whsec_talkpay_emulator_connect_dev_secret"),
    ],
)
def test_a_committed_or_fake_secret_is_refused_even_when_set(name, value):
    result = _manage("check", "--deploy", **{**PRODUCTION, name: value})

    assert result.returncode != 0
    assert name in result.stderr


def test_check_deploy_passes_without_warnings_with_production_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore:The HMAC key")
@pytest.mark.parametrize(
    "key",
    [
        "dev-insecure-talkpay-secret-key-change-me-in-production",
        "dev-insecure-talkpay-jwt-signing-key",
        "dev-insecure-talkpay-secret-key",
    ],
)
def test_a_token_forged_with_a_committed_default_key_is_refused(api_client, key):
    admin = TalkerFactory(is_staff=True, is_superuser=True)
    forged = jwt.encode({"token_type": "access", "user_id": admin.pk, "exp": 4102444800, "jti": "x"}, key, "HS256")

    response = api_client.get("/api/auth/me/", HTTP_AUTHORIZATION=f"Bearer {forged}")

    assert response.status_code == 401
    assert response.json()["error"]["message"].startswith("Given token not valid")


def test_the_jwt_signing_key_is_its_own_setting():
    assert settings.SIMPLE_JWT["SIGNING_KEY"] == settings.JWT_SIGNING_KEY
    assert settings.JWT_SIGNING_KEY != settings.SECRET_KEY
