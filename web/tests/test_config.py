"""One configuration for every command: what `make run` decides (.run/env) is what `manage.py` reads."""

import os
import subprocess
import sys
from pathlib import Path

from scripts.run import write_run_env

ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "from django.conf import settings as s; "
    "print(s.STRIPE_API_BASE, s.REDIS_URL, s.STRIPE_WEBHOOK_SECRET, s.CONNECT_RETURN_URL, sep='|')"
)


def _manage_sees(tmp_path, run_env: dict | None, **environment) -> list[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("STRIPE_", "REDIS_", "TALKPAY_"))}
    env.pop("WEB_PORT", None)
    env.pop("PUBLIC_BASE_URL", None)
    run_env_file = tmp_path / "env"
    if run_env is not None:
        write_run_env(run_env, run_env_file)
    env.update(TALKPAY_RUN_ENV_FILE=str(run_env_file), DJANGO_DEBUG="true", **environment)
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "shell", "-c", PROBE],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1].split("|")


def test_manage_py_in_another_terminal_uses_what_make_run_decided(tmp_path):
    # given `make run` chose an emulator port, an embedded Redis and a web port, and wrote .run/env
    decided = {
        "STRIPE_API_BASE": "http://127.0.0.1:12199",
        "REDIS_URL": "redis://127.0.0.1:6399/0",
        "STRIPE_WEBHOOK_SECRET": "whsec_from_make_run",
        "PUBLIC_BASE_URL": "http://127.0.0.1:8099",
        "UNRELATED": "not written",
    }
    # when a manage.py command starts without any of it in its environment
    api_base, redis_url, secret, return_url = _manage_sees(tmp_path, decided)
    # then it talks to the same emulator and Redis, and hands out URLs on the same web port
    assert (api_base, redis_url, secret) == (
        "http://127.0.0.1:12199",
        "redis://127.0.0.1:6399/0",
        "whsec_from_make_run",
    )
    assert return_url == "http://127.0.0.1:8099/connect/return"
    assert "UNRELATED" not in (tmp_path / "env").read_text()


def test_the_process_environment_wins_over_run_env(tmp_path):
    seen = _manage_sees(tmp_path, {"REDIS_URL": "redis://127.0.0.1:6399/0"}, REDIS_URL="redis://10.0.0.1:6379/3")
    assert seen[1] == "redis://10.0.0.1:6379/3"


def test_an_empty_stripe_api_base_with_the_emulator_key_never_means_real_stripe(tmp_path):
    # as after `cp .env.example .env` with an empty STRIPE_API_BASE, and no make run yet
    api_base, *_ = _manage_sees(tmp_path, None, STRIPE_API_BASE="", STRIPE_SECRET_KEY="sk_test_talkpay_emulator")
    assert api_base == "http://127.0.0.1:12111"
    # a real key with an empty base is the documented switch to Stripe itself
    api_base, *_ = _manage_sees(tmp_path, None, STRIPE_API_BASE="", STRIPE_SECRET_KEY="sk_test_realkey")
    assert api_base == ""


def test_env_example_sets_nothing_when_copied():
    # every setting in .env.example is commented out, so copying it to .env changes no default
    lines = [line for line in (ROOT / ".env.example").read_text().splitlines() if line.strip()]
    assert lines and all(line.lstrip().startswith("#") for line in lines)
