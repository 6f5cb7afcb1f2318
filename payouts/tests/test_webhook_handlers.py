"""The payouts app's Stripe events, handed over as the dispatcher hands them (Stripe's event shape)."""

import pytest

from billing import ledger
from billing.stripe_gateway import connect as gateway
from billing.webhooks.connect import HANDLERS
from payouts import services
from payouts.models import Payout, StripeListenerAccount
from payouts.periods import period_parse
from payouts.tests.conftest import at, stripe_event
from payouts.tests.factories import ListenerPayoutFactory

pytestmark = pytest.mark.django_db


def test_account_updated_keeps_the_account_current_and_ignores_older_events(connected_listener, stripe_emulator):
    # given an onboarded listener
    listener = connected_listener()
    account_id = listener.stripe_listener_account.stripe_account_id
    onboarded = gateway.account_retrieve(account_id)

    # when Stripe restricts the account, then the restriction is applied
    stripe_emulator.post(f"/_emulator/accounts/{account_id}/restrict")
    restricted_event = stripe_event("account.updated", gateway.account_retrieve(account_id), account=account_id)
    assert HANDLERS["account.updated"](restricted_event) == "processed"
    row = StripeListenerAccount.objects.get(pk=listener.stripe_listener_account.pk)
    assert (row.payouts_enabled, row.disabled_reason) == (False, "requirements.past_due")
    assert "external_account" in row.requirements["currently_due"]

    # when an older event (the onboarding one) arrives late, then it changes nothing
    late = stripe_event("account.updated", onboarded, account=account_id)
    late["created"] = restricted_event["created"] - 60
    assert HANDLERS["account.updated"](late) == "ignored"
    row.refresh_from_db()
    assert row.payouts_enabled is False


def test_an_account_we_created_but_never_saved_is_recovered_by_the_next_onboarding_not_by_the_event(
    connected_listener,
):
    from billing.webhooks.outcomes import EventFlagged

    # given the account exists on Stripe but our row was lost (a crash after Stripe answered)
    listener = connected_listener()
    account_id = listener.stripe_listener_account.stripe_account_id
    StripeListenerAccount.objects.filter(listener=listener).delete()

    # when account.updated arrives, then it is flagged: its metadata alone proves nothing
    event = stripe_event("account.updated", gateway.account_retrieve(account_id), account=account_id)
    with pytest.raises(EventFlagged):
        HANDLERS["account.updated"](event)
    assert not StripeListenerAccount.objects.filter(listener=listener).exists()

    # when the listener asks for onboarding again, then Stripe hands back the same account (same idempotency key)
    assert services.connect_account_get_or_create(listener=listener).stripe_account_id == account_id


def test_an_account_we_never_created_never_becomes_a_listeners_payout_destination(stripe_emulator):
    from billing.models import WebhookEvent
    from billing.tests.stripe_events import deliver
    from web.tests.factories import ListenerFactory

    listener = ListenerFactory()
    foreign = (
        gateway.client()
        .v1.accounts.create(params={"type": "express", "metadata": {"listener_id": str(listener.pk)}})
        .to_dict()
    )

    status = deliver(stripe_event("account.updated", foreign, account=foreign["id"]))

    assert status == WebhookEvent.Status.FLAGGED
    assert not StripeListenerAccount.objects.filter(listener=listener).exists()


def test_account_updated_applies_the_account_as_stripe_holds_it_not_as_the_event_says(connected_listener):
    listener = connected_listener()
    account_id = listener.stripe_listener_account.stripe_account_id
    forged = {**gateway.account_retrieve(account_id), "payouts_enabled": False, "charges_enabled": False}

    assert HANDLERS["account.updated"](stripe_event("account.updated", forged, account=account_id)) == "processed"

    row = StripeListenerAccount.objects.get(listener=listener)
    assert row.payouts_enabled is True


def test_capability_updated_reads_the_account_back_from_stripe_for_our_accounts_only(
    connected_listener, stripe_emulator
):
    # given an onboarded listener whose transfers capability Stripe then deactivates
    listener = connected_listener()
    account_id = listener.stripe_listener_account.stripe_account_id
    stripe_emulator.post(f"/_emulator/accounts/{account_id}/restrict")
    capability = gateway.client().v1.accounts.capabilities.retrieve(account_id, "transfers").to_dict()
    assert capability["status"] == "inactive"

    # when capability.updated arrives, then the account is applied as Stripe holds it now
    assert HANDLERS["capability.updated"](stripe_event("capability.updated", capability, account=account_id)) == (
        "processed"
    )
    row = StripeListenerAccount.objects.get(listener=listener)
    assert (row.payouts_enabled, row.disabled_reason) == (False, "requirements.past_due")

    # and one naming an account we never stored changes nothing
    foreign = gateway.client().v1.accounts.create(params={"type": "express"}).to_dict()
    event = stripe_event("capability.updated", {**capability, "account": foreign["id"]}, account=foreign["id"])
    assert HANDLERS["capability.updated"](event) == "ignored"


def test_transfer_reversed_books_the_money_back_once(connected_listener, fund_platform, stripe_emulator):
    # given a paid payout of 54.00
    fund_platform()
    listener = connected_listener()
    for _ in range(2):
        ListenerPayoutFactory(listener=listener, completed_at=at("2026-11-04 10:00"))
    services.payout_run(period=period_parse("weekly", "2026-W45"))
    payout = Payout.objects.get(listener=listener)
    cash_before = ledger.balance(ledger.PLATFORM_CASH)

    # when 20.00 of the transfer is reversed on Stripe and the event is delivered twice
    stripe_emulator_client = gateway.client()
    stripe_emulator_client.v1.transfers.reversals.create(payout.stripe_transfer_id, params={"amount": 2000})
    event = stripe_event(
        "transfer.reversed", gateway.client().v1.transfers.retrieve(payout.stripe_transfer_id).to_dict()
    )
    assert HANDLERS["transfer.reversed"](event) == "processed"
    assert HANDLERS["transfer.reversed"](event) == "ignored"

    # then the ledger shows the money back in our balance, once; no clawback asked for it, so it is
    # not owed to the listener (no earning is behind it) but waits for an operator's review
    payout.refresh_from_db()
    assert (payout.amount_reversed, payout.amount_reversed_unrequested, payout.status) == (2000, 2000, "paid")
    assert ledger.balance(ledger.PLATFORM_CASH) == cash_before + 2000
    assert ledger.balance(ledger.listener_payable(listener.pk)) == 0
    assert ledger.balance(ledger.UNREQUESTED_REVERSALS) == 2000


def test_payout_failed_on_the_connected_account_is_shown_on_the_account(connected_listener):
    # given an onboarded listener whose bank payout fails on Stripe
    listener = connected_listener()
    account_id = listener.stripe_listener_account.stripe_account_id
    failed_payout = {
        "id": "po_1Pgc79B7WZ01zgkWu1KToYf4",
        "object": "payout",
        "amount": 5400,
        "currency": "usd",
        "status": "failed",
        "failure_code": "account_closed",
        "failure_message": "The bank account has been closed.",
        "destination": "ba_1Pgc79B7WZ01zgkWoU5vBiXt",
    }

    # when payout.failed arrives for the connected account
    result = HANDLERS["payout.failed"](stripe_event("payout.failed", failed_payout, account=account_id))

    # then the listener's account shows why their money did not reach the bank
    assert result == "processed"
    row = StripeListenerAccount.objects.get(listener=listener)
    assert (row.payout_failure_code, row.payout_failed_at is not None) == ("account_closed", True)
    # and a platform payout (no account) is not ours to handle
    assert HANDLERS["payout.failed"](stripe_event("payout.failed", failed_payout)) == "ignored"
