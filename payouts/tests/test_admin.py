"""Operators' tools in the admin: payouts filterable by status and period, retrying a failed payout,
holding and releasing a listener."""

import pytest

from payouts import services
from payouts.models import ListenerPayoutSettings, Payout
from payouts.periods import period_parse
from payouts.tests.conftest import at, stripe_transfers
from payouts.tests.factories import ListenerPayoutFactory

pytestmark = pytest.mark.django_db

W45 = period_parse("weekly", "2026-W45")


def test_an_operator_retries_a_failed_payout_from_the_admin(
    admin_client, connected_listener, fund_platform, stripe_emulator
):
    # given week 45's payout failed because Stripe restricted the account before we heard about it
    fund_platform()
    listener = connected_listener()
    ListenerPayoutFactory(listener=listener, completed_at=at("2026-11-04 10:00"))
    account_id = listener.stripe_listener_account.stripe_account_id
    stripe_emulator.post(f"/_emulator/accounts/{account_id}/restrict")
    services.payout_run(period=W45)
    payout = Payout.objects.get(listener=listener)
    assert payout.status == Payout.Status.FAILED

    # when the account is fixed and an operator filters failed payouts and retries it
    stripe_emulator.post(f"/_emulator/accounts/{account_id}/onboard")
    listing = admin_client.get("/admin/payouts/payout/", {"status__exact": "failed"})
    assert listing.status_code == 200 and f"/admin/payouts/payout/{payout.pk}/change/" in listing.content.decode()
    response = admin_client.post(
        "/admin/payouts/payout/", {"action": "retry_failed", "_selected_action": [payout.pk]}, follow=True
    )

    # then it is paid, once
    assert response.status_code == 200
    payout.refresh_from_db()
    assert payout.status == Payout.Status.PAID
    assert [t["id"] for t in stripe_transfers(listener)] == [payout.stripe_transfer_id]


def test_an_operator_holds_and_releases_a_listener(admin_client, connected_listener, fund_platform):
    fund_platform()
    listener = connected_listener()
    ListenerPayoutFactory(listener=listener, completed_at=at("2026-11-04 10:00"))
    row = ListenerPayoutSettings.objects.create(listener=listener)

    admin_client.post("/admin/payouts/listenerpayoutsettings/", {"action": "hold", "_selected_action": [row.pk]})
    services.payout_run(period=W45)
    assert stripe_transfers(listener) == []

    admin_client.post("/admin/payouts/listenerpayoutsettings/", {"action": "release", "_selected_action": [row.pk]})
    services.payout_run(period=W45)
    assert [t["amount"] for t in stripe_transfers(listener)] == [2700]


def test_connect_accounts_are_listed_with_their_flags(admin_client, connected_listener):
    listener = connected_listener(onboard=False)
    page = admin_client.get("/admin/payouts/stripelisteneraccount/").content.decode()
    assert listener.stripe_listener_account.stripe_account_id in page


def test_accounts_show_their_transfers_capability_and_an_operator_can_read_them_again_from_stripe(
    admin_client, connected_listener, stripe_emulator
):
    from payouts.models import StripeListenerAccount

    # given a listener whose transfers capability Stripe deactivated without our hearing of it yet
    listener = connected_listener()
    account_id = listener.stripe_listener_account.stripe_account_id
    stripe_emulator.post(f"/_emulator/accounts/{account_id}/capabilities/transfers", {"status": "inactive"})
    row = StripeListenerAccount.objects.get(listener=listener)
    assert row.transfers_capability == "active"

    # when an operator reads the account again from Stripe in the admin
    admin_client.post(
        "/admin/payouts/stripelisteneraccount/",
        {"action": "refresh_from_stripe", "_selected_action": [row.pk]},
        follow=True,
    )

    # then it is stored as Stripe holds it, and the list filtered on the capability shows it
    row.refresh_from_db()
    assert (row.transfers_capability, row.payouts_enabled) == ("inactive", True)
    page = admin_client.get("/admin/payouts/stripelisteneraccount/", {"transfers_capability__exact": "inactive"})
    assert page.status_code == 200 and account_id in page.content.decode()
    other = admin_client.get("/admin/payouts/stripelisteneraccount/", {"transfers_capability__exact": "active"})
    assert account_id not in other.content.decode()
