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


def test_run_payouts_says_how_many_listeners_are_held_for_their_transfers_capability(
    connected_listener, fund_platform, stripe_emulator
):
    from payouts import services

    fund_platform()
    listener = connected_listener()
    account_id = listener.stripe_listener_account.stripe_account_id
    stripe_emulator.post(f"/_emulator/accounts/{account_id}/capabilities/transfers", {"status": "inactive"})
    services.connect_account_refresh(account_id=account_id)
    ListenerPayoutFactory(listener=listener, completed_at=at("2026-11-04 10:00"))

    output = run("--schedule", "weekly", "--period", "2026-W45")

    assert "1 listener(s) held: transfers_capability_not_active" in output
    assert stripe_transfers(listener) == [] and not Payout.objects.exists()


def test_connect_accounts_refresh_stores_what_stripe_holds_for_every_account(connected_listener, stripe_emulator):
    from payouts.models import StripeListenerAccount

    # given two onboarded listeners, one whose transfers capability Stripe deactivated unbeknown to us
    kept, lost = connected_listener(), connected_listener()
    lost_id = lost.stripe_listener_account.stripe_account_id
    stripe_emulator.post(f"/_emulator/accounts/{lost_id}/capabilities/transfers", {"status": "inactive"})

    out = StringIO()
    call_command("connect_accounts_refresh", stdout=out)

    assert "2 account(s) read from Stripe, 0 could not be; 1 account(s) without an active" in out.getvalue()
    capabilities = dict(StripeListenerAccount.objects.values_list("listener_id", "transfers_capability"))
    assert capabilities == {kept.pk: "active", lost.pk: "inactive"}


def test_the_migration_keeps_paying_accounts_we_were_paying_and_no_others():
    import importlib

    from django.apps import apps

    from payouts.models import StripeListenerAccount
    from payouts.tests.factories import StripeListenerAccountFactory

    migration = importlib.import_module("payouts.migrations.0009_connect_transfers_capability")
    paid = StripeListenerAccountFactory(transfers_capability="inactive")
    onboarding = StripeListenerAccountFactory(transfers_capability="inactive", payouts_enabled=False)

    migration.onboarded_accounts_keep_being_paid(apps, None)

    assert dict(StripeListenerAccount.objects.values_list("pk", "transfers_capability")) == {
        paid.pk: "active",
        onboarding.pk: "inactive",
    }
