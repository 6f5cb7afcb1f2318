"""common.prepared: a statement compiled once gives what the ORM gives, and refuses what it cannot keep."""

import threading

import pytest
from django.db import DatabaseError, OperationalError, connection, transaction
from django.db.models import signals
from django.db.transaction import TransactionManagementError

from billing.models import LedgerAccount, LedgerEntry, LedgerTransaction, Payment, StripeCustomer, WebhookEvent
from billing.payments import _payment_for_intent_locked, payment_lock_for_intent
from billing.tests.factories import PaymentFactory
from booking.models import Booking
from common.prepared import PreparedQuery, PreparedUpdate, PrepareError, row_insert, row_save, rows_insert

pytestmark = pytest.mark.django_db


def _paid_by_card(intent_id: str, *, customer: str = "") -> Payment:
    payment = PaymentFactory(stripe_payment_intent_id=intent_id, status=Payment.Status.REQUIRES_PAYMENT_METHOD)
    if customer:
        StripeCustomer.objects.create(user=payment.talker, stripe_customer_id=customer)
    return payment


def _as_saved(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def test_a_prepared_lock_gives_the_row_its_queryset_gives_for_each_value(django_assert_num_queries):
    # Given two payments, one talker with a Stripe customer, one without
    first = _paid_by_card("pi_first", customer="cus_first")
    second = _paid_by_card("pi_second")
    with transaction.atomic():
        for payment, customer in ((first, "cus_first"), (second, "")):
            # When each is locked through the prepared statement
            with django_assert_num_queries(1):
                locked = payment_lock_for_intent(payment_intent_id=payment.stripe_payment_intent_id)
                booking = locked.booking
            # Then it is the row, its booking and its annotation, exactly as the ORM reads them
            expected = _payment_for_intent_locked(payment.stripe_payment_intent_id).get()
            assert _as_saved(locked) == _as_saved(expected)
            assert _as_saved(booking) == _as_saved(expected.booking)
            assert locked._talker_customer_id == expected._talker_customer_id == customer
        # And an intent of nobody's is no row
        assert payment_lock_for_intent(payment_intent_id="pi_nobody") is None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_prepared_lock_holds_the_row_lock():
    payment = _paid_by_card("pi_locked")
    seen = {}

    def try_elsewhere():
        try:
            with transaction.atomic():
                Payment.objects.select_for_update(nowait=True).filter(pk=payment.pk).first()
            seen["locked"] = False
        except OperationalError:
            seen["locked"] = True
        finally:
            connection.close()

    with transaction.atomic():
        payment_lock_for_intent(payment_intent_id="pi_locked")
        other = threading.Thread(target=try_elsewhere)
        other.start()
        other.join()
    assert seen == {"locked": True}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_prepared_row_lock_outside_a_transaction_is_refused_before_and_after_compiling():
    _paid_by_card("pi_autocommit")
    lock = PreparedQuery(_payment_for_intent_locked, intent_id=str)
    with pytest.raises(TransactionManagementError):
        lock.first(intent_id="pi_autocommit")
    with transaction.atomic():
        assert lock.first(intent_id="pi_autocommit") is not None
    with pytest.raises(TransactionManagementError):
        lock.first(intent_id="pi_autocommit")


def test_a_parameter_the_sql_transforms_is_refused():
    prepared = PreparedQuery(lambda code: LedgerAccount.objects.filter(code__contains=code), code=str)
    with pytest.raises(PrepareError, match="do not appear unchanged"):
        prepared.all(code="platform")


@pytest.mark.django_db(transaction=True)
def test_values_lists_come_back_as_the_orm_gives_them_and_survive_a_reconnect():
    first = _paid_by_card("pi_values_1")
    _paid_by_card("pi_values_2")
    pairs = PreparedQuery(
        lambda intent: Payment.objects.filter(stripe_payment_intent_id=intent).values_list("pk", "status"),
        intent=str,
    )
    flat = PreparedQuery(
        lambda pk: Payment.objects.filter(pk=pk).values_list("stripe_payment_intent_id", flat=True), pk=int
    )
    assert pairs.all(intent="pi_values_1") == [(first.pk, "requires_payment_method")]
    assert flat.all(pk=first.pk) == ["pi_values_1"]
    connection.close()
    assert pairs.all(intent="pi_values_2") == list(
        Payment.objects.filter(stripe_payment_intent_id="pi_values_2").values_list("pk", "status")
    )


def test_row_save_writes_only_its_fields_and_stamps_auto_now():
    payment = _paid_by_card("pi_save")
    before = payment.updated_at
    payment.status = Payment.Status.SUCCEEDED
    payment.client_secret = "not saved"
    row_save(payment, update_fields=("status", "updated_at"))
    stored = Payment.objects.get(pk=payment.pk)
    assert stored.status == "succeeded"
    assert stored.client_secret == ""
    assert stored.updated_at == payment.updated_at > before


def test_row_save_of_a_row_that_is_gone_fails_as_save_does():
    event = WebhookEvent.objects.create(stripe_event_id="evt_gone", type="x", payload={}, raw_body="{}")
    WebhookEvent.objects.filter(pk=event.pk).delete()
    event.status = WebhookEvent.Status.PROCESSED
    with pytest.raises(DatabaseError, match="did not affect any rows"):
        row_save(event, update_fields=("status",))


def test_writes_of_a_model_with_save_signals_go_through_the_orm_and_send_them():
    heard = []

    def receiver(sender, instance, created, update_fields=None, **_):
        heard.append((created, sorted(update_fields or ())))

    signals.post_save.connect(receiver, sender=WebhookEvent)
    try:
        event = row_insert(WebhookEvent, stripe_event_id="evt_signal", type="x", payload={}, raw_body="{}")
        event.status = WebhookEvent.Status.PROCESSED
        row_save(event, update_fields=("status",))
    finally:
        signals.post_save.disconnect(receiver, sender=WebhookEvent)
    assert heard == [(True, []), (False, ["status"])]
    assert WebhookEvent.objects.get(pk=event.pk).status == "processed"


def test_row_insert_stores_the_row_the_orm_would():
    payment = _paid_by_card("pi_insert")
    fields = {"kind": "payment_succeeded", "payment_id": payment.pk, "booking_id": payment.booking_id}
    ours = row_insert(LedgerTransaction, key="prepared", **fields)
    theirs = LedgerTransaction.objects.create(key="orm", **fields)
    stored = {row.key: row for row in LedgerTransaction.objects.filter(key__in=("prepared", "orm"))}
    assert ours.pk == stored["prepared"].pk and not ours._state.adding
    for name in ("kind", "currency", "description", "metadata", "payment_id", "booking_id"):
        assert getattr(stored["prepared"], name) == getattr(stored["orm"], name)
    assert stored["prepared"].created_at == ours.created_at <= theirs.created_at


def test_row_insert_refuses_an_unsaved_related_object():
    with pytest.raises(ValueError, match="unsaved related object"):
        row_insert(LedgerEntry, transaction=LedgerTransaction(key="unsaved", kind="x"), account_id=1, amount=1)


def test_rows_insert_stores_every_row():
    txn = LedgerTransaction.objects.create(key="rows", kind="payment_succeeded")
    accounts = [LedgerAccount.objects.create(code=f"platform:test{n}", name="t", kind="asset") for n in range(3)]
    lines = list(zip(accounts, (10, -4, -6), strict=True))
    rows_insert(LedgerEntry, [{"transaction_id": txn.pk, "account_id": a.pk, "amount": cents} for a, cents in lines])
    stored = sorted(LedgerEntry.objects.filter(transaction=txn).values_list("account_id", "amount"))
    assert stored == sorted((a.pk, cents) for a, cents in lines)


def test_a_prepared_update_changes_only_the_rows_its_filter_matches():
    pending = _paid_by_card("pi_pending").booking
    confirmed = _paid_by_card("pi_confirmed").booking
    Booking.objects.filter(pk=confirmed.pk).update(status=Booking.Status.CONFIRMED)
    cancel_pending = PreparedUpdate(
        lambda pk: Booking.objects.filter(pk=pk, status=Booking.Status.PENDING), ("status", "cancel_reason"), pk=int
    )
    values = {"status": Booking.Status.CANCELLED, "cancel_reason": "test"}
    assert cancel_pending.run(set=values, pk=pending.pk) == 1
    assert cancel_pending.run(set=values, pk=confirmed.pk) == 0
    assert dict(Booking.objects.filter(pk__in=(pending.pk, confirmed.pk)).values_list("pk", "status")) == {
        pending.pk: "cancelled",
        confirmed.pk: "confirmed",
    }
