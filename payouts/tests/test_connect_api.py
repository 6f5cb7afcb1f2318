"""Connect onboarding and status, through the API, against the emulator."""

import pytest
import requests

from billing.stripe_gateway import connect as gateway
from payouts.models import StripeListenerAccount
from payouts.tests.conftest import account_updated_from_stripe
from payouts.tests.factories import ListenerPayoutFactory
from web.testing import auth_client
from web.tests.factories import ListenerFactory, TalkerFactory

pytestmark = pytest.mark.django_db

ONBOARDING = "/api/payment/connect/onboarding/"
STATUS = "/api/payment/connect/status/"


def test_onboarding_creates_the_express_account_once_and_returns_a_fresh_link_each_time(stripe_emulator, settings):
    # given a listener without a Connect account
    listener = ListenerFactory()
    client = auth_client(listener)

    # when they start onboarding twice
    first = client.post(ONBOARDING)
    second = client.post(ONBOARDING)

    # then one Express account exists, on Stripe and here, and each answer is a new single-use link
    assert first.status_code == second.status_code == 201
    account_id = first.json()["account"]["stripe_account_id"]
    assert second.json()["account"]["stripe_account_id"] == account_id
    assert StripeListenerAccount.objects.get(listener=listener).stripe_account_id == account_id
    stripe_account = gateway.account_retrieve(account_id)
    assert stripe_account["type"] == "express"
    assert stripe_account["metadata"] == {"listener_id": str(listener.pk)}
    assert first.json()["url"] != second.json()["url"]
    assert settings.CONNECT_RETURN_URL.split("://")[1] in first.json()["url"].replace("%3A", ":").replace("%2F", "/")


def test_only_listeners_can_onboard(stripe_emulator):
    response = auth_client(TalkerFactory()).post(ONBOARDING)
    assert response.status_code == 403
    assert not StripeListenerAccount.objects.exists()


def test_status_shows_held_earnings_until_the_account_can_receive_payouts(stripe_emulator):
    # given a listener who started onboarding and has a completed 27.00 session
    listener = ListenerFactory()
    client = auth_client(listener)
    account_id = client.post(ONBOARDING).json()["account"]["stripe_account_id"]
    ListenerPayoutFactory(listener=listener)

    # then the status says why payouts are blocked and how much waits
    body = client.get(STATUS).json()
    assert body["account"]["can_receive_payouts"] is False
    assert body["payouts_blocked_by"] == ["connect_account_not_ready"]
    assert body["held_amount"] == "27.00"

    # when onboarding completes on Stripe and account.updated arrives
    stripe_emulator.post(f"/_emulator/accounts/{account_id}/onboard")
    account_updated_from_stripe(account_id)

    # then nothing blocks payouts any more
    body = client.get(STATUS).json()
    assert body["account"]["payouts_enabled"] is True and body["account"]["can_receive_payouts"] is True
    assert (body["payouts_blocked_by"], body["held_amount"]) == ([], "0.00")


def test_status_shows_the_transfers_capability_and_holds_earnings_while_stripe_keeps_it_inactive(stripe_emulator):
    from billing.webhooks.connect import HANDLERS
    from payouts.tests.conftest import stripe_event

    # given an onboarded listener with a completed 27.00 session
    listener = ListenerFactory()
    client = auth_client(listener)
    account_id = client.post(ONBOARDING).json()["account"]["stripe_account_id"]
    stripe_emulator.post(f"/_emulator/accounts/{account_id}/onboard")
    account_updated_from_stripe(account_id)
    ListenerPayoutFactory(listener=listener)
    assert client.get(STATUS).json()["account"]["transfers_capability"] == "active"

    # when Stripe puts the transfers capability under review (payouts stay enabled) and says so
    stripe_emulator.post(
        f"/_emulator/accounts/{account_id}/capabilities/transfers",
        {"status": "pending", "disabled_reason": "pending.review"},
    )
    capability = gateway.account_capability_retrieve(account_id, "transfers")
    assert HANDLERS["capability.updated"](stripe_event("capability.updated", capability, account=account_id)) == (
        "processed"
    )

    # then the status shows the capability, Stripe's reason, and the earnings held for it
    body = client.get(STATUS).json()
    assert body["account"]["payouts_enabled"] is True and body["account"]["can_receive_payouts"] is False
    assert (body["account"]["transfers_capability"], body["account"]["transfers_capability_reason"]) == (
        "pending",
        "pending.review",
    )
    assert (body["payouts_blocked_by"], body["held_amount"]) == (["transfers_capability_not_active"], "27.00")


def test_an_onboarded_listener_gets_a_fresh_express_dashboard_link_with_the_status(stripe_emulator):
    # given a listener whose onboarding is not finished
    listener = ListenerFactory()
    client = auth_client(listener)
    account_id = client.post(ONBOARDING).json()["account"]["stripe_account_id"]
    assert client.get(STATUS).json()["dashboard_url"] is None  # Stripe has no dashboard for them yet

    # when onboarding completes
    stripe_emulator.post(f"/_emulator/accounts/{account_id}/onboard")
    account_updated_from_stripe(account_id)

    # then each status carries a new single-use login link into their Express dashboard
    first, second = client.get(STATUS).json()["dashboard_url"], client.get(STATUS).json()["dashboard_url"]
    assert first and second and first != second
    page = requests.get(first, timeout=10)
    assert page.status_code == 200 and account_id in page.text


def test_the_status_still_answers_when_stripe_cannot_make_the_dashboard_link(stripe_emulator):
    listener = ListenerFactory()
    client = auth_client(listener)
    account_id = client.post(ONBOARDING).json()["account"]["stripe_account_id"]
    stripe_emulator.post(f"/_emulator/accounts/{account_id}/onboard")
    account_updated_from_stripe(account_id)
    stripe_emulator.fault("500", count=10, path_prefix=f"/v1/accounts/{account_id}/login_links")

    response = client.get(STATUS)

    assert response.status_code == 200
    assert response.json()["dashboard_url"] is None and response.json()["account"]["payouts_enabled"] is True


def test_status_without_an_account_says_so(stripe_emulator):
    body = auth_client(ListenerFactory()).get(STATUS).json()
    assert body["account"] is None
    assert body["payouts_blocked_by"] == ["connect_account_missing"]
