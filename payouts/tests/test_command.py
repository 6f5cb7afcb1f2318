from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from payouts.models import Payout
from payouts.tests.conftest import at, stripe_transfers
from payouts.tests.factories import ListenerPayoutFactory

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command("run_payouts", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_a_dry_run_shows_what_would_be_paid_and_changes_nothing(connected_listener, fund_platform):
    fund_platform()
    listener = connected_listener()
    ListenerPayoutFactory(listener=listener, completed_at=at("2026-11-04 10:00"))

    output = run("--schedule", "weekly", "--period", "2026-W45", "--dry-run")

    assert "2026-W45 (2026-11-02 .. 2026-11-08)" in output
    assert "27.00" in output
    assert not Payout.objects.exists()
    assert stripe_transfers() == []


def test_running_a_period_by_hand_pays_it_and_summarises(connected_listener, fund_platform):
    fund_platform()
    listener = connected_listener()
    ListenerPayoutFactory(listener=listener, completed_at=at("2026-11-05 10:00"))

    output = run("--schedule", "weekly", "--period", "2026-11-05")

    assert [t["amount"] for t in stripe_transfers(listener)] == [2700]
    assert "amount paid" in output and "27.00" in output


def test_an_unfinished_period_is_refused():
    with pytest.raises(CommandError, match="has not ended"):
        run("--schedule", "monthly", "--period", "2099-01")


def test_a_payout_can_be_demonstrated_now_in_debug(connected_listener, fund_platform, settings):
    # given a session completed a minute ago, in the week that is still running
    from datetime import timedelta

    from django.utils import timezone

    settings.DEBUG = True
    fund_platform()
    listener = connected_listener()
    ListenerPayoutFactory(listener=listener, completed_at=timezone.now() - timedelta(minutes=1))

    output = run("--schedule", "weekly", "--period", "current", "--allow-open")

    assert [t["amount"] for t in stripe_transfers(listener)] == [2700]
    assert Payout.objects.get(listener=listener).status == Payout.Status.PAID
    assert "27.00" in output


def test_paying_an_open_period_is_refused_outside_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DJANGO_DEBUG"):
        run("--schedule", "weekly", "--period", "current", "--allow-open")
    with pytest.raises(CommandError, match="--allow-open"):
        run("--schedule", "weekly", "--period", "current")
