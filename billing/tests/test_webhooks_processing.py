"""What each Stripe event does to payments, bookings, the ledger and earnings, whatever the order.

Events are delivered signed to the intake. PaymentIntents, charges and refunds are real ones on the
emulator: every event is applied from the object read from Stripe, so an event's payload (what it
carried when it was sent) never decides."""

import itertools

import pytest
from django.core.management import call_command

from billing import ledger
from billing.models import LedgerKind, LedgerTransaction, Payment, Refund, WebhookEvent
from billing.tests.stripe_events import (
    charge_refund,
    charge_refunded_event,
    deliver,
    foreign_intent,
    intent_cancel,
    intent_confirm,
    intent_event,
    intent_payment,
    intent_update,
    payment_intent_object,
    refund_updated_event,
    stripe_event,
    stripe_id,
)
from booking.models import Booking
from booking.tests.factories import BookingFactory, PackageFactory
from payouts.models import ListenerPayout
from web.tests.factories import ListenerFactory, TalkerFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stripe_emulator")]


def _awaiting_payment(price="30.00", **people) -> Payment:
    """A payment whose PaymentIntent exists on Stripe, waiting for the card. `talker=`/`listener=` reuse
    users (creating one hashes a password, which is slow)."""
    return intent_payment(booking=BookingFactory(package=PackageFactory(price=price), **people))


def _pay(payment: Payment) -> tuple[dict, str]:
    """The talker pays on Stripe: the `payment_intent.succeeded` event Stripe sends, and the charge id."""
    intent_confirm(payment)
    event = intent_event("payment_intent.succeeded", payment, previous={"status": "requires_payment_method"})
    return event, event["data"]["object"]["latest_charge"]


def _ledger_lines(key: str) -> dict[str, int]:
    txn = LedgerTransaction.objects.get(key=key)
    return {entry.account.code: entry.amount for entry in txn.entries.select_related("account")}


def test_a_succeeded_payment_confirms_the_booking_books_the_split_and_creates_the_earning():
    payment = _awaiting_payment()
    event, charge_id = _pay(payment)

    status = deliver(event)

    assert status == WebhookEvent.Status.PROCESSED
    payment.refresh_from_db()
    assert (payment.status, payment.stripe_charge_id) == (Payment.Status.SUCCEEDED, charge_id)
    assert payment.booking.__class__.objects.get(pk=payment.booking_id).status == Booking.Status.CONFIRMED
    listener_id = payment.booking.listener_id
    assert _ledger_lines(f"payment-succeeded-{payment.pk}") == {
        ledger.PLATFORM_CASH: 3000,
        ledger.APP_REVENUE: -300,
        ledger.listener_payable(listener_id): -2700,
    }
    earning = ListenerPayout.objects.get(payment=payment)
    assert (earning.listener_id, earning.amount, earning.status) == (listener_id, 2700, ListenerPayout.Status.PENDING)


def test_the_same_succeeded_event_again_or_another_copy_of_it_changes_nothing():
    payment = _awaiting_payment()
    event, _ = _pay(payment)
    deliver(event)
    again = stripe_event("payment_intent.succeeded", event["data"]["object"])  # Stripe's resend: a new event id

    deliver(event)
    assert deliver(again) == WebhookEvent.Status.IGNORED

    assert LedgerTransaction.objects.filter(payment=payment, kind=LedgerKind.PAYMENT_SUCCEEDED).count() == 1
    assert ListenerPayout.objects.filter(payment=payment).count() == 1
    assert WebhookEvent.objects.get(stripe_event_id=event["id"]).deliveries == 2


def _end_state(payment: Payment) -> tuple:
    payment.refresh_from_db()
    earning = ListenerPayout.objects.get(payment=payment)
    txns = tuple(sorted(LedgerTransaction.objects.filter(payment=payment).values_list("kind", flat=True)))
    refunds = tuple(sorted(Refund.objects.filter(payment=payment).values_list("amount", "status")))
    return (
        payment.status,
        payment.amount_refunded,
        Booking.objects.get(pk=payment.booking_id).status,
        earning.status,
        earning.amount_reversed,
        txns,
        refunds,
        ledger.balance(ledger.listener_payable(payment.booking.listener_id)),
    )


def test_every_order_of_succeeded_refunded_and_duplicate_events_ends_in_the_same_state(stripe_emulator):
    """Succeeded, a partial refund, then the rest refunded, plus a duplicate of the first two: all
    30 distinct orders give the same payment, booking, earning, refunds and ledger."""
    names = ("succeeded", "refund_1", "refund_2", "succeeded", "refund_1")
    end_states = set()
    people = {"talker": TalkerFactory(), "listener": ListenerFactory()}
    for order in sorted(set(itertools.permutations(names))):
        payment = _awaiting_payment(price="33.33", **people)  # 3333 cents, app fee 333: odd on purpose
        succeeded, charge_id = _pay(payment)
        charge_refund(charge_id, 1001)
        after_first = charge_refunded_event(charge_id)
        charge_refund(charge_id, 2332)
        events = {"succeeded": succeeded, "refund_1": after_first, "refund_2": charge_refunded_event(charge_id)}
        for name in order:
            deliver(events[name])
        end_states.add(_end_state(payment))

    assert end_states == {
        (
            Payment.Status.SUCCEEDED,
            3333,
            Booking.Status.REFUNDED,
            ListenerPayout.Status.CANCELLED,
            3000,
            ("payment_succeeded", "refund", "refund"),
            ((1001, Refund.Status.SUCCEEDED), (2332, Refund.Status.SUCCEEDED)),
            0,
        )
    }
    call_command("ledger_check")


def test_a_partial_refund_reverses_the_split_in_proportion_and_keeps_the_booking():
    payment = _awaiting_payment(price="33.33")
    event, charge_id = _pay(payment)
    deliver(event)
    refund = charge_refund(charge_id, 1001)

    deliver(refund_updated_event(refund["id"]))

    # app part = round_half_up(1001 × 333 / 3333) = 100, the listener's part is the other 901.
    assert _ledger_lines(f"refund-{refund['id']}") == {
        ledger.APP_REVENUE: 100,
        ledger.listener_payable(payment.booking.listener_id): 901,
        ledger.PLATFORM_CASH: -1001,
    }
    payment.refresh_from_db()
    earning = ListenerPayout.objects.get(payment=payment)
    assert payment.amount_refunded == 1001
    assert (earning.amount_reversed, earning.status) == (901, ListenerPayout.Status.PENDING)
    assert Booking.objects.get(pk=payment.booking_id).status == Booking.Status.CONFIRMED


def test_many_small_refunds_reverse_exactly_the_original_shares(stripe_emulator):
    """Cumulative rounding: 1-cent and odd refunds never drift from the split; the full refund lands on it."""
    payment = _awaiting_payment(price="33.33")
    event, charge_id = _pay(payment)
    deliver(event)
    amounts = [1, 1, 7, 13, 499, 1, 1000, 1811]
    assert sum(amounts) == 3333
    for amount in amounts:
        charge_refund(charge_id, amount)
        deliver(charge_refunded_event(charge_id))

    listener = ledger.listener_payable(payment.booking.listener_id)
    assert ledger.balances([ledger.APP_REVENUE, listener, ledger.PLATFORM_CASH]) == {
        ledger.APP_REVENUE: 0,
        listener: 0,
        ledger.PLATFORM_CASH: 0,
    }
    assert ListenerPayout.objects.get(payment=payment).amount_reversed == 3000
    call_command("ledger_check")


def test_a_refund_made_by_our_worker_is_matched_by_its_metadata_not_duplicated():
    payment = _awaiting_payment()
    event, charge_id = _pay(payment)
    deliver(event)
    ours = Refund.objects.create(payment=payment, amount=1500, status=Refund.Status.REQUESTED)
    refund = charge_refund(charge_id, 1500, metadata={"refund_id": str(ours.pk)})

    deliver(charge_refunded_event(charge_id))

    ours.refresh_from_db()
    assert (ours.stripe_refund_id, ours.status) == (refund["id"], Refund.Status.SUCCEEDED)
    assert Refund.objects.filter(payment=payment).count() == 1


def test_a_refund_that_fails_after_succeeding_gives_the_listener_their_share_back(stripe_emulator):
    payment = _awaiting_payment()
    event, charge_id = _pay(payment)
    deliver(event)
    refund = charge_refund(charge_id, 3000)
    succeeded = refund_updated_event(refund["id"])
    deliver(succeeded)
    assert ListenerPayout.objects.get(payment=payment).status == ListenerPayout.Status.CANCELLED

    stripe_emulator.post(f"/_emulator/refunds/{refund['id']}/fail", {"failure_reason": "expired_or_canceled_card"})
    deliver(refund_updated_event(refund["id"]))
    deliver(succeeded)  # the older "succeeded" delivered again: Stripe says failed, so nothing changes

    payment.refresh_from_db()
    earning = ListenerPayout.objects.get(payment=payment)
    assert payment.amount_refunded == 0
    assert (earning.amount_reversed, earning.status) == (0, ListenerPayout.Status.PENDING)
    assert ledger.balance(ledger.listener_payable(payment.booking.listener_id)) == 2700
    call_command("ledger_check")


def test_an_older_non_final_event_after_success_changes_nothing():
    # given a declined card (Stripe's payment_failed event is delayed), then a card that pays
    payment = _awaiting_payment()
    intent_confirm(payment, payment_method="pm_card_chargeDeclined")
    late = intent_event("payment_intent.payment_failed", payment)
    assert late["data"]["object"]["last_payment_error"]["decline_code"] == "generic_decline"
    succeeded, _ = _pay(payment)
    deliver(succeeded)

    status = deliver(late)

    payment.refresh_from_db()
    assert status == WebhookEvent.Status.IGNORED
    assert (payment.status, payment.failure_code) == (Payment.Status.SUCCEEDED, "")


def test_a_declined_card_keeps_the_booking_waiting_with_the_reason():
    payment = _awaiting_payment()
    intent_confirm(payment, payment_method="pm_card_chargeDeclinedInsufficientFunds")

    status = deliver(intent_event("payment_intent.payment_failed", payment))

    payment.refresh_from_db()
    assert status == WebhookEvent.Status.PROCESSED
    assert (payment.status, payment.failure_code) == (Payment.Status.REQUIRES_PAYMENT_METHOD, "insufficient_funds")
    assert Booking.objects.get(pk=payment.booking_id).status == Booking.Status.PENDING


def test_a_canceled_intent_cancels_the_payment_and_frees_the_slot():
    payment = _awaiting_payment()
    intent_cancel(payment)

    deliver(intent_event("payment_intent.canceled", payment))

    payment.refresh_from_db()
    assert payment.status == Payment.Status.CANCELED
    assert Booking.objects.get(pk=payment.booking_id).status == Booking.Status.CANCELLED
    assert not LedgerTransaction.objects.filter(payment=payment).exists()


def test_events_we_do_not_handle_or_for_intents_not_ours_are_recorded_and_ignored():
    unknown = stripe_event("customer.created", {"id": stripe_id("cus"), "object": "customer"})
    foreign = stripe_event("payment_intent.succeeded", payment_intent_object(status="succeeded"))

    assert deliver(unknown) == WebhookEvent.Status.IGNORED
    assert deliver(foreign) == WebhookEvent.Status.IGNORED
    assert WebhookEvent.objects.filter(stripe_event_id__in=[unknown["id"], foreign["id"]]).count() == 2
    assert not LedgerTransaction.objects.exists()


def test_an_event_for_a_payment_whose_intent_id_is_not_saved_yet_waits_for_it_instead_of_trusting_metadata():
    from billing.tests.stripe_events import signed_body
    from billing.webhooks.intake import webhook_receive
    from billing.webhooks.processing import WebhookHandlerFailed, webhook_event_process

    # given Stripe's event for our intent, arriving before our worker committed the intent's id
    payment = _awaiting_payment()
    event, _ = _pay(payment)
    intent_id = payment.stripe_payment_intent_id
    Payment.objects.filter(pk=payment.pk).update(stripe_payment_intent_id=None, status=Payment.Status.AWAITING_INTENT)
    body, signature = signed_body(event)
    receipt = webhook_receive(body=body, signature_header=signature, headers={})

    # when it is processed, it is retried rather than applied by metadata
    with pytest.raises(WebhookHandlerFailed):
        webhook_event_process(webhook_event_id=receipt.webhook_event_id, last_try=False)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.AWAITING_INTENT
    assert WebhookEvent.objects.get(pk=receipt.webhook_event_id).status == WebhookEvent.Status.PENDING

    # then once our worker has recorded the intent, the retry applies it
    Payment.objects.filter(pk=payment.pk).update(
        stripe_payment_intent_id=intent_id, status=Payment.Status.REQUIRES_PAYMENT_METHOD
    )
    webhook_event_process(webhook_event_id=receipt.webhook_event_id)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED


def test_item14_a_foreign_intent_carrying_our_payment_id_pays_nothing():
    # given a paid intent we never created, whose metadata names one of our payments (which has its own intent)
    payment = _awaiting_payment()
    foreign = foreign_intent(payment)
    assert foreign["status"] == "succeeded"

    # then it is kept flagged for an operator (issue 11), and nothing is paid
    assert deliver(stripe_event("payment_intent.succeeded", foreign)) == WebhookEvent.Status.FLAGGED

    payment.refresh_from_db()
    assert payment.status != Payment.Status.SUCCEEDED
    assert not LedgerTransaction.objects.filter(payment=payment).exists()


def test_item14_an_intent_that_took_another_amount_is_flagged_not_booked():
    # given our intent, updated on Stripe to take another amount before it was confirmed
    payment = _awaiting_payment()
    intent_update(payment, amount=payment.amount + 500)
    event, _ = _pay(payment)

    assert deliver(event) == WebhookEvent.Status.FLAGGED

    payment.refresh_from_db()
    assert payment.status != Payment.Status.SUCCEEDED
    assert "received" in payment.review_reason
    assert not LedgerTransaction.objects.filter(payment=payment).exists()
    assert payment.booking.status == Booking.Status.PENDING


def test_money_taken_after_we_believed_the_payment_canceled_is_still_booked():
    # given a payment our books show canceled, though Stripe took the money
    payment = _awaiting_payment()
    Payment.objects.filter(pk=payment.pk).update(status=Payment.Status.CANCELED)
    succeeded, _ = _pay(payment)

    deliver(succeeded)
    # a canceled event for it now contradicts Stripe (succeeded is final): flagged, changes nothing
    forged = intent_event("payment_intent.canceled", payment, status="canceled")

    assert deliver(forged) == WebhookEvent.Status.FLAGGED
    payment.refresh_from_db()
    assert payment.status == Payment.Status.SUCCEEDED
    assert LedgerTransaction.objects.filter(payment=payment, kind=LedgerKind.PAYMENT_SUCCEEDED).count() == 1
    assert ListenerPayout.objects.filter(payment=payment).exists()
