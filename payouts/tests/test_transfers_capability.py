"""A listener's `transfers` capability, through the real SDK against the emulator: Stripe can make it
pending or inactive after onboarding while `payouts_enabled` stays true, and then refuses every transfer
to the account (`insufficient_capabilities_for_transfer`). Payout runs hold such listeners' earnings
(unpaid, never lost), pay them once when Stripe activates the capability again, and survive Stripe
refusing a transfer because the capability moved after our last look. Stripe's own events are delivered
signed through our webhook intake; after each step ledger_check is clean and what we say left for the
listener is what Stripe moved."""

from __future__ import annotations

import pytest
from django.utils import timezone

from billing import ledger, stripe_gateway
from billing.models import WebhookEvent
from billing.tests.refund_support import (
    StripeEvents,
    assert_ledger_clean,
    complete_session,
    connected_listener,
    paid_booking,
)
from billing.tests.stripe_events import deliver
from payouts import selectors, services
from payouts.models import ListenerPayout, Payout, Schedule, StripeListenerAccount
from payouts.periods import period_containing
from payouts.services import connect as connect_services
from payouts.tests.conftest import stripe_transfers

pytestmark = pytest.mark.django_db


class PlatformAndAccountEvents(StripeEvents):
    """The platform's events and those of the connected accounts watched (Stripe lists a connected
    account's events only with its Stripe-Account header, and sends them to Connect endpoints), in the
    order Stripe created them, each handed out once."""

    def __init__(self):
        super().__init__()
        self.accounts: list[str] = []

    def new(self, *types: str) -> list[dict]:
        fresh = super().new(*types)
        for account_id in self.accounts:
            listing = stripe_gateway.call(
                stripe_gateway.client().v1.events.list,
                params={"limit": 100},
                options=stripe_gateway.options(stripe_account=account_id),
            )
            theirs = [stripe_gateway.as_dict(event) for event in listing.auto_paging_iter()]
            theirs = [e for e in theirs if e["id"] not in self.seen and (not types or e["type"] in types)]
            self.seen.update(e["id"] for e in theirs)
            fresh.extend(theirs)
        fresh.sort(key=lambda event: (event["created"], event["id"]))
        return fresh


@pytest.fixture
def events(stripe_emulator):
    return PlatformAndAccountEvents()


@pytest.fixture
def notices(monkeypatch) -> list[tuple[str, int]]:
    """The notifications the Connect service asks for (task name, account row id)."""
    asked: list[tuple[str, int]] = []
    monkeypatch.setattr(connect_services, "notification_enqueue", lambda task, pk: asked.append((task, pk)))
    return asked


def _week():
    return period_containing(Schedule.WEEKLY, timezone.now().date())


def _run(stripe_emulator, *, execute: bool = True):
    stripe_emulator.post("/_emulator/balance/topup", {"amount": 1_000_000, "currency": "usd"})
    return services.payout_run(period=_week(), execute=execute)


def _set_transfers(stripe_emulator, listener, status: str, reason: str | None = None) -> None:
    """Stripe moves the listener's transfers capability on its own (payouts_enabled untouched)."""
    account_id = listener.stripe_listener_account.stripe_account_id
    stripe_emulator.post(
        f"/_emulator/accounts/{account_id}/capabilities/transfers", {"status": status, "disabled_reason": reason}
    )


def _account(listener) -> StripeListenerAccount:
    return StripeListenerAccount.objects.get(listener=listener)


def _earning(listener) -> ListenerPayout:
    return ListenerPayout.objects.get(listener=listener)


def _assert_earning_waits_unpaid(listener) -> None:
    """In no payout and not paid: the next run that may pay the listener collects it."""
    earning = _earning(listener)
    assert earning.payout_id is None and earning.status in selectors.UNPAID, (earning.status, earning.payout_id)


def _assert_books_agree_with_stripe(listener) -> None:
    """ledger_check is clean, and what we say left for the listener is what Stripe moved to them."""
    theirs = sum(t["amount"] - t["amount_reversed"] for t in stripe_transfers(listener))
    ours = sum(
        p.amount - p.amount_reversed
        for p in Payout.objects.filter(listener=listener, status__in=(Payout.Status.PAID, Payout.Status.REVERSED))
    )
    assert ours == theirs
    assert_ledger_clean()


def _listener_with_a_payable_earning(stripe_emulator, events, price: str = "50.00"):
    listener = connected_listener(stripe_emulator)
    complete_session(paid_booking(events, price=price, listener=listener))
    events.accounts.append(listener.stripe_listener_account.stripe_account_id)
    events.new()  # onboarding's account events: connected_listener applied the account already
    events.deliver_new()
    return listener


@pytest.mark.parametrize(
    ("status", "reason"), [("inactive", "requirements.fields_needed"), ("pending", "pending.review")]
)
def test_a_listener_whose_transfers_capability_is_not_active_is_held_and_nothing_is_transferred(
    stripe_emulator, events, notices, status, reason
):
    # given a listener owed 45.00, whose transfers capability Stripe then makes not active, payouts still
    # enabled, and Stripe's account.updated and capability.updated delivered
    listener = _listener_with_a_payable_earning(stripe_emulator, events)
    _set_transfers(stripe_emulator, listener, status, reason)
    delivered = events.deliver_new()
    assert {e["type"] for e in delivered} == {"account.updated", "capability.updated"}

    # then we store the capability as Stripe holds it, with its reason, and tell the listener once
    account = _account(listener)
    assert (account.payouts_enabled, account.transfers_capability, account.transfers_capability_reason) == (
        True,
        status,
        reason,
    )
    assert notices == [("payouts.notify_account_restricted", account.pk)]

    # when the week's payout run happens (twice)
    summary = _run(stripe_emulator)
    _run(stripe_emulator)

    # then nothing is sent to Stripe, no payout is made, the earning waits unpaid, and the run and the
    # listener's status say why
    assert stripe_transfers(listener) == []
    assert not Payout.objects.filter(listener=listener).exists()
    _assert_earning_waits_unpaid(listener)
    assert summary.held == {"transfers_capability_not_active": 1}
    assert (summary.payouts_created, summary.paid, summary.failed) == (0, 0, 0)
    assert selectors.earnings_held_for_listener(listener_id=listener.pk) == {
        "reasons": ["transfers_capability_not_active"],
        "held_amount": 4500,
        "disputed_amount": 0,
    }
    assert ledger.balance(ledger.listener_payable(listener.pk)) == 4500
    _assert_books_agree_with_stripe(listener)


def test_once_stripe_activates_the_capability_again_the_next_run_pays_the_held_earning_once(stripe_emulator, events):
    # given a listener owed 45.00 held by a run because their transfers capability was inactive
    listener = _listener_with_a_payable_earning(stripe_emulator, events)
    _set_transfers(stripe_emulator, listener, "inactive", "requirements.fields_needed")
    events.deliver_new()
    _run(stripe_emulator)
    assert stripe_transfers(listener) == []

    # when Stripe activates it again and tells us
    _set_transfers(stripe_emulator, listener, "active")
    events.deliver_new()
    assert (_account(listener).transfers_capability, _account(listener).transfers_capability_reason) == (
        "active",
        "",
    )

    # then the next run pays the 45.00, once, and runs after it pay nothing more
    summary = _run(stripe_emulator)
    _run(stripe_emulator)
    assert (summary.paid, summary.amount_paid, summary.held) == (1, 4500, {})
    assert [t["amount"] for t in stripe_transfers(listener)] == [4500]
    payout = Payout.objects.get(listener=listener)
    assert (payout.status, payout.attempts, payout.stripe_transfer_id) == (
        Payout.Status.PAID,
        1,
        stripe_transfers(listener)[0]["id"],
    )
    assert _earning(listener).status == ListenerPayout.Status.PAID
    assert ledger.balance(ledger.listener_payable(listener.pk)) == 0
    assert selectors.earnings_held_for_listener(listener_id=listener.pk)["reasons"] == []
    _assert_books_agree_with_stripe(listener)


def test_a_transfer_stripe_refuses_because_the_capability_moved_after_our_check_is_not_lost_nor_paid_twice(
    stripe_emulator, events
):
    # given a listener's 45.00 collected into this week's payout while their capability was active
    listener = _listener_with_a_payable_earning(stripe_emulator, events)
    _run(stripe_emulator, execute=False)
    payout = Payout.objects.get(listener=listener)
    assert (payout.status, payout.amount) == (Payout.Status.PENDING, 4500)

    # and Stripe deactivates the capability, its events still on their way to us
    _set_transfers(stripe_emulator, listener, "inactive", "requirements.fields_needed")
    late = events.new()
    assert _account(listener).transfers_capability == "active"

    # when the run sends the transfer, Stripe refuses it
    summary = _run(stripe_emulator)

    # then the payout failed with Stripe's reason, nothing reached the listener, the earning is back in
    # the pool unpaid, the ledger still owes it, and the account was read back from Stripe
    payout.refresh_from_db()
    assert payout.status == Payout.Status.FAILED and summary.failed == 1
    assert payout.failure_reason.startswith("insufficient_capabilities_for_transfer: ")
    assert stripe_transfers(listener) == []
    _assert_earning_waits_unpaid(listener)
    assert ledger.balance(ledger.listener_payable(listener.pk)) == 4500
    account = _account(listener)
    assert (account.transfers_capability, account.transfers_capability_reason) == (
        "inactive",
        "requirements.fields_needed",
    )
    _assert_books_agree_with_stripe(listener)

    # when the late events arrive and the next run happens, then it is held: no new attempt
    for event in late:
        deliver(event)
    summary = _run(stripe_emulator)
    assert summary.held == {"transfers_capability_not_active": 1}
    payout.refresh_from_db()
    assert (payout.status, payout.attempts) == (Payout.Status.FAILED, 1)

    # when Stripe activates the capability again, then the next run pays the 45.00 once (the same
    # payout, a new attempt and idempotency key), and later runs pay nothing more
    _set_transfers(stripe_emulator, listener, "active")
    events.deliver_new()
    _run(stripe_emulator)
    _run(stripe_emulator)
    payout.refresh_from_db()
    assert (payout.status, payout.attempts, payout.failure_reason) == (Payout.Status.PAID, 2, "")
    assert [(t["id"], t["amount"]) for t in stripe_transfers(listener)] == [(payout.stripe_transfer_id, 4500)]
    assert _earning(listener).status == ListenerPayout.Status.PAID
    assert ledger.balance(ledger.listener_payable(listener.pk)) == 0
    _assert_books_agree_with_stripe(listener)


def test_a_capability_lost_between_collect_and_transfer_fails_the_payout_before_stripe_and_keeps_the_earning(
    stripe_emulator, events
):
    # given a listener's 45.00 collected into this week's payout
    listener = _listener_with_a_payable_earning(stripe_emulator, events)
    _run(stripe_emulator, execute=False)

    # when Stripe makes the capability pending (under review) and tells us before the transfer is sent
    _set_transfers(stripe_emulator, listener, "pending", "pending.review")
    events.deliver_new()
    _run(stripe_emulator)

    # then no transfer was attempted: the payout failed with the reason, the earning is back unpaid
    payout = Payout.objects.get(listener=listener)
    assert (payout.status, payout.attempts) == (Payout.Status.FAILED, 0)
    assert payout.failure_reason.startswith("Held: ")
    assert "transfers capability pending: pending.review" in payout.failure_reason
    assert stripe_transfers(listener) == []
    _assert_earning_waits_unpaid(listener)
    assert ledger.balance(ledger.listener_payable(listener.pk)) == 4500
    _assert_books_agree_with_stripe(listener)

    # and once Stripe activates it, the next run pays it once
    _set_transfers(stripe_emulator, listener, "active")
    events.deliver_new()
    _run(stripe_emulator)
    _run(stripe_emulator)
    assert [t["amount"] for t in stripe_transfers(listener)] == [4500]
    assert Payout.objects.get(listener=listener).status == Payout.Status.PAID
    _assert_books_agree_with_stripe(listener)


def test_duplicated_and_reordered_capability_events_change_nothing(stripe_emulator, events, notices):
    # given a listener owed 45.00 whose transfers capability Stripe deactivates, then (two seconds later
    # on Stripe's clock) activates again
    listener = _listener_with_a_payable_earning(stripe_emulator, events)
    account_pk = _account(listener).pk
    _set_transfers(stripe_emulator, listener, "inactive", "requirements.fields_needed")
    deactivated = events.new()
    stripe_emulator.post("/_emulator/clock/advance", {"seconds": 2})
    _set_transfers(stripe_emulator, listener, "active")
    reactivated = events.new()
    assert (
        {e["type"] for e in deactivated}
        == {e["type"] for e in reactivated}
        == {
            "account.updated",
            "capability.updated",
        }
    )
    assert min(e["created"] for e in reactivated) > max(e["created"] for e in deactivated)

    # when the reactivation arrives first, the deactivation late, and every event again (Stripe retries)
    statuses = [deliver(event) for event in reactivated + deactivated + reactivated + deactivated]

    # then the late deactivation is ignored (older than what was applied), the duplicates are stored and
    # processed once, the account is as Stripe holds it (active), and the listener was told nothing
    assert statuses[:2] == [WebhookEvent.Status.PROCESSED] * 2
    assert statuses[2:4] == [WebhookEvent.Status.IGNORED] * 2
    assert statuses[4:] == statuses[:4]
    ids = [e["id"] for e in reactivated + deactivated]
    assert WebhookEvent.objects.filter(stripe_event_id__in=ids).count() == 4
    account = _account(listener)
    assert (account.transfers_capability, account.transfers_capability_reason, account.payouts_enabled) == (
        "active",
        "",
        True,
    )
    assert account.last_event_created == max(e["created"] for e in reactivated)
    assert notices == []

    # and the week's run pays the 45.00 once
    _run(stripe_emulator)
    _run(stripe_emulator)
    assert [t["amount"] for t in stripe_transfers(listener)] == [4500]
    assert ledger.balance(ledger.listener_payable(listener.pk)) == 0
    _assert_books_agree_with_stripe(listener)

    # and when the deactivation (the one Stripe delivers in order this time) is replayed by hand, the
    # account is still read from Stripe, not from the replayed payload
    for event in deactivated:
        deliver({**event, "id": event["id"] + "_replayed", "created": int(account.last_event_created)})
    assert _account(listener).transfers_capability == "active"
    assert StripeListenerAccount.objects.get(pk=account_pk).transfers_capability_reason == ""
    assert notices == []
