"""Helpers for payout tests: listeners with real Connect accounts on the emulator, a funded platform
balance, and Stripe-shaped events (fixtures3.json's `event` shape) for the webhook handlers."""

from __future__ import annotations

import itertools
import time
from datetime import datetime

import pytest

from billing.stripe_gateway import connect as gateway
from payouts import services
from payouts.models import ListenerPayoutSettings, Schedule
from web.tests.factories import ListenerFactory

_event_ids = itertools.count(1)


def stripe_event(event_type: str, obj: dict, *, account: str | None = None, previous: dict | None = None) -> dict:
    """A verified event as the webhook dispatcher hands it to a handler."""
    return {
        "id": f"evt_test{next(_event_ids):010d}",
        "object": "event",
        "api_version": "2024-06-20",
        "account": account,
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": obj, "previous_attributes": previous or {}},
    }


def account_updated_from_stripe(account_id: str) -> str:
    """Deliver `account.updated` with the account as Stripe holds it now."""
    from billing.webhooks.connect import HANDLERS

    account = gateway.account_retrieve(account_id)
    return HANDLERS["account.updated"](stripe_event("account.updated", account, account=account_id))


@pytest.fixture
def connected_listener(stripe_emulator):
    """`connected_listener(onboard=True, schedule="weekly", minimum=None)`: a listener with an Express
    account created through our service; onboarded on the emulator unless `onboard=False`."""

    def make(*, onboard: bool = True, schedule: str = Schedule.WEEKLY, minimum: int | None = None, **user):
        listener = ListenerFactory(**user)
        account = services.connect_account_get_or_create(listener=listener)
        if onboard:
            stripe_emulator.post(f"/_emulator/accounts/{account.stripe_account_id}/onboard")
            account_updated_from_stripe(account.stripe_account_id)
        if schedule != Schedule.WEEKLY or minimum is not None:
            ListenerPayoutSettings.objects.create(listener=listener, schedule=schedule, minimum_amount=minimum)
        return listener

    return make


@pytest.fixture
def fund_platform(stripe_emulator):
    def fund(amount: int = 10_000_000) -> None:
        stripe_emulator.post("/_emulator/balance/topup", {"amount": amount, "currency": "usd"})

    return fund


def stripe_transfers(listener=None) -> list[dict]:
    transfers = list(gateway.transfers_list_all())
    if listener is None:
        return transfers
    return [t for t in transfers if t["destination"] == listener.stripe_listener_account.stripe_account_id]


def at(text: str) -> datetime:
    """`at("2026-11-04 10:00")` in UTC."""
    return datetime.fromisoformat(text + "+00:00")
