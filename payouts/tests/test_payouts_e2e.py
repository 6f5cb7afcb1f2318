"""End to end through Stripe's webhooks: the emulator signs and sends account.updated and
transfer.reversed to our endpoint (live server), a real Celery worker dispatches them to the payouts
handlers, and payout runs act on the result."""

import pytest

from billing import ledger
from billing.stripe_gateway import connect as gateway
from payouts import services
from payouts.models import Payout, StripeListenerAccount
from payouts.periods import period_parse
from payouts.tests.conftest import at, stripe_transfers
from payouts.tests.factories import ListenerPayoutFactory
from web.testing import webhooks_register
from web.tests.support import eventually

pytestmark = pytest.mark.slow


@pytest.fixture
def wired(stripe_emulator, live_server, celery_worker):
    webhooks_register(stripe_emulator, live_server.url)
    return stripe_emulator


def test_onboarding_on_stripe_releases_held_earnings_and_a_reversal_comes_back_to_the_ledger(
    wired, connected_listener, fund_platform
):
    # given a listener who has not finished onboarding, with 54.00 earned in week 45
    fund_platform()
    listener = connected_listener(onboard=False)
    for day in ("2026-11-03 10:00", "2026-11-05 10:00"):
        ListenerPayoutFactory(listener=listener, completed_at=at(day))
    week = period_parse("weekly", "2026-W45")
    services.payout_run(period=week)
    assert stripe_transfers(listener) == []

    # when they complete onboarding on Stripe (Stripe sends account.updated)
    account_id = listener.stripe_listener_account.stripe_account_id
    wired.post(f"/_emulator/accounts/{account_id}/onboard")

    def account_ready():
        """account.updated applied"""
        return StripeListenerAccount.objects.filter(stripe_account_id=account_id, payouts_enabled=True).exists()

    eventually(account_ready)

    # then the next run pays what accrued
    services.payout_run(period=week)
    payout = Payout.objects.get(listener=listener)
    assert (payout.status, payout.amount) == (Payout.Status.PAID, 5400)

    # when 10.00 of the transfer is reversed on Stripe (Stripe sends transfer.reversed)
    gateway.client().v1.transfers.reversals.create(payout.stripe_transfer_id, params={"amount": 1000})

    def reversal_booked():
        """transfer.reversed applied"""
        return Payout.objects.filter(pk=payout.pk, amount_reversed=1000).exists()

    eventually(reversal_booked)

    # then the reversed 10.00 is back in our balance; no clawback asked for it, so it waits for an
    # operator's review instead of being owed to the listener with no earning behind it (issue 10 item 6)
    assert ledger.balance(ledger.listener_payable(listener.pk)) == 0
    assert ledger.balance(ledger.UNREQUESTED_REVERSALS) == 1000


def test_stripe_pausing_transfers_holds_the_earnings_and_reactivating_them_lets_the_next_run_pay_once(
    wired, connected_listener, fund_platform
):
    # given an onboarded listener with 27.00 earned in week 45
    fund_platform()
    listener = connected_listener()
    account_id = listener.stripe_listener_account.stripe_account_id
    ListenerPayoutFactory(listener=listener, completed_at=at("2026-11-04 10:00"))
    week = period_parse("weekly", "2026-W45")

    # when Stripe makes the transfers capability inactive, payouts still enabled (Stripe sends
    # account.updated and capability.updated to the Connect endpoint)
    wired.post(f"/_emulator/accounts/{account_id}/capabilities/transfers", {"status": "inactive"})

    def transfers_is(status):
        def applied():
            """capability.updated applied"""
            return StripeListenerAccount.objects.filter(
                stripe_account_id=account_id, transfers_capability=status, payouts_enabled=True
            ).exists()

        return applied

    eventually(transfers_is("inactive"))

    # then the run holds the earnings: nothing is sent
    assert services.payout_run(period=week).held == {"transfers_capability_not_active": 1}
    assert stripe_transfers(listener) == []

    # when Stripe activates it again, then the next run pays the 27.00 once
    wired.post(f"/_emulator/accounts/{account_id}/capabilities/transfers", {"status": "active"})
    eventually(transfers_is("active"))
    services.payout_run(period=week)
    services.payout_run(period=week)
    assert [t["amount"] for t in stripe_transfers(listener)] == [2700]
    assert Payout.objects.get(listener=listener).status == Payout.Status.PAID
    assert ledger.balance(ledger.listener_payable(listener.pk)) == 0
