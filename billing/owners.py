"""The services billing asks of the apps above it, without importing them.

Billing sits below booking and payouts (web → booking / payouts → billing → workers), yet a Stripe
event it processes changes their rows too: a succeeded payment confirms the booking and creates the
listener's earning, a refund cancels both, a dispute freezes them. Each row keeps one owner, so billing
calls the owner's services, named here as protocols; booking and payouts hand over their service
modules when Django starts (their `AppConfig.ready`). Nothing is looked up by name: a missing owner
is an error at the first call, never a silently skipped effect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from billing.models import Payment


class BookingOwner(Protocol):
    def booking_lock(self, *, booking_id: int) -> object: ...

    def booking_confirm_paid(self, *, booking_id: int) -> bool: ...

    def booking_mark_refunded(self, *, booking_id: int) -> bool: ...

    def booking_refund_failed(self, *, booking_id: int) -> bool: ...

    def booking_dispute_freeze(self, *, booking_id: int) -> str: ...

    def booking_dispute_release(self, *, booking_id: int, restore_to: str) -> bool: ...

    def booking_cancel_by_system(self, *, booking_id: int, reason: str) -> bool: ...


class PayoutsOwner(Protocol):
    def earning_lock(self, *, payment_id: int) -> object: ...

    def earning_create_for_payment(self, *, payment: Payment, listener_id: int, known_new: bool = False) -> tuple: ...

    def earning_reverse(self, *, payment_id: int, cents: int, cause: str) -> int: ...

    def earning_hold(self, *, payment_id: int) -> str: ...

    def earning_release(self, *, payment_id: int, restore_to: str) -> bool: ...

    def connect_account_known(self, *, account_id: str) -> bool: ...

    def connect_account_refresh(self, *, account_id: str, event_created: int | None = None) -> bool: ...

    def connect_account_payout_failed(self, *, account_id: str, payout: dict) -> bool: ...

    def payout_transfer_reversed(self, *, transfer: dict) -> bool: ...


class SubscriptionsOwner(Protocol):
    def subscription_sync(self, *, stripe_subscription_id: str) -> bool: ...

    def invoice_sync(self, *, stripe_invoice_id: str) -> bool: ...

    def schedule_sync(self, *, stripe_schedule_id: str) -> bool: ...


_owners: dict[str, object] = {}


def register(
    *,
    bookings: BookingOwner | None = None,
    payouts: PayoutsOwner | None = None,
    subscriptions: SubscriptionsOwner | None = None,
) -> None:
    if bookings is not None:
        _owners["bookings"] = bookings
    if payouts is not None:
        _owners["payouts"] = payouts
    if subscriptions is not None:
        _owners["subscriptions"] = subscriptions


def _owner(name: str):
    try:
        return _owners[name]
    except KeyError:
        raise RuntimeError(f"no {name} owner registered with billing.owners (is its app installed?)") from None


def bookings() -> BookingOwner:
    return _owner("bookings")


def payouts() -> PayoutsOwner:
    return _owner("payouts")


def subscriptions() -> SubscriptionsOwner:
    return _owner("subscriptions")
