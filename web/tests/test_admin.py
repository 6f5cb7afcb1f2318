"""The admin: money as money, the ledger strictly read-only, bookings changed only by services."""

import pytest
from django.urls import reverse

from billing.ledger import APP_REVENUE, PLATFORM_CASH, Line, ledger_post, listener_payable
from booking.models import Booking
from booking.tests.factories import BookingFactory
from web.tests.factories import UserFactory


@pytest.fixture
def admin_client(client):
    operator = UserFactory(username="operator", is_staff=True, is_superuser=True)
    client.force_login(operator)
    return client


@pytest.fixture
def ledger_transaction():
    listener = UserFactory()
    lines = [Line(PLATFORM_CASH, 3000), Line(APP_REVENUE, -300), Line(listener_payable(listener.pk), -2700)]
    txn, _ = ledger_post(key="test-sale-1", kind="sale", lines=lines)
    return txn


@pytest.mark.django_db
def test_the_ledger_has_no_add_no_edit_and_no_delete(admin_client, ledger_transaction):
    changelist = admin_client.get(reverse("admin:billing_ledgertransaction_changelist"))
    assert changelist.status_code == 200
    assert reverse("admin:billing_ledgertransaction_add") not in changelist.content.decode()
    assert admin_client.get(reverse("admin:billing_ledgertransaction_add")).status_code == 403
    change_url = reverse("admin:billing_ledgertransaction_change", args=[ledger_transaction.pk])
    page = admin_client.get(change_url)
    assert page.status_code == 200  # viewable
    assert b'name="_save"' not in page.content and b"30.00 USD" in page.content
    assert admin_client.post(change_url, {"key": "edited", "kind": "edited"}).status_code == 403
    delete_url = reverse("admin:billing_ledgertransaction_delete", args=[ledger_transaction.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    ledger_transaction.refresh_from_db()
    assert ledger_transaction.key == "test-sale-1"


@pytest.mark.django_db
def test_booking_amounts_show_as_money(admin_client):
    BookingFactory(package__price="30.00")
    page = admin_client.get(reverse("admin:booking_booking_changelist")).content.decode()
    assert "30.00 USD" in page and ">3000<" not in page


@pytest.mark.django_db
def test_booking_status_parties_and_amounts_cannot_be_edited(admin_client):
    booking = BookingFactory(status=Booking.Status.CONFIRMED, notes="before")
    other = UserFactory()
    url = reverse("admin:booking_booking_change", args=[booking.pk])
    response = admin_client.post(
        url,
        {
            "status": Booking.Status.COMPLETED,
            "talker": other.pk,
            "listener": other.pk,
            "total_amount": 1,
            "notes": "after",
        },
    )
    assert response.status_code == 302
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED and booking.talker_id != other.pk
    assert booking.total_amount != 1
    assert booking.notes == "after"  # the one free-text field an operator may correct
    assert admin_client.get(reverse("admin:booking_booking_add")).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_an_operator_cancels_a_booking_only_through_the_service(admin_client):
    from billing.models import Payment
    from billing.tests.factories import PaymentFactory

    unpaid = PaymentFactory(status=Payment.Status.AWAITING_INTENT).booking
    started = BookingFactory(status=Booking.Status.IN_PROGRESS)
    response = admin_client.post(
        reverse("admin:booking_booking_changelist"),
        {"action": "cancel_with_full_refund", "_selected_action": [unpaid.pk, started.pk]},
        follow=True,
    )
    page = response.content.decode()
    unpaid.refresh_from_db()
    started.refresh_from_db()
    assert unpaid.status == Booking.Status.CANCELLED and f"Booking #{unpaid.pk} cancelled" in page
    # the service refuses what the lifecycle does not allow, and the operator is told why
    assert started.status == Booking.Status.IN_PROGRESS and f"Booking #{started.pk}:" in page
