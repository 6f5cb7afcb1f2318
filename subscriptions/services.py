"""Subscriptions: a standing weekly or monthly slot with one listener, billed by a Stripe subscription.

Flow
    `subscription_create` (web tier) validates, records the subscription and reserves the next
    SUBSCRIPTION_RESERVE_AHEAD occurrences of the slot as `reserved` bookings in one transaction (the
    bookings' exclusion constraint makes a second subscription, or a booking, for the slot lose), and
    enqueues `subscription_create_on_stripe`. The worker creates the Stripe subscription incomplete
    (`payment_behavior=default_incomplete`); the talker confirms its first invoice's PaymentIntent with
    Stripe.js (`payment.client_secret`).
    Stripe's events (`billing.webhooks.subscriptions`) are triggers: the handler re-reads the subscription
    or invoice from Stripe, matched by the ids we stored, and applies it here under the subscription's
    row lock. A paid period invoice turns that period's reservation into a pending booking with what Stripe
    took, split by the plan's percentage, and billing books it as any paid booking
    (`billing.subscription_payments`): the booking confirmed, the split in the ledger, the listener's
    earning, paid out by the normal runs. Reservations are topped up so the next occurrences stay held.
    A failed renewal leaves its booking reserved and tells the talker; when Stripe ends the subscription
    (canceled, unpaid, incomplete_expired) every reservation still held is released.

Lock order: subscription → payment → booking → earning → … (common.locks after the subscription).

Periods: Stripe's period k starts k intervals after the billing cycle anchor; occurrence k of the slot is
`slot_anchor_at` + (k − `slot_anchor_occurrence`) intervals. The first session must fall within the first
period, so every session is paid before it happens.
"""

from __future__ import annotations

import calendar
import logging
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from billing import money, stripe_gateway
from billing.payments import stripe_customer_get_or_create
from billing.stripe_gateway import subscriptions as gateway
from billing.subscription_payments import payment_record_for_paid_invoice
from billing.webhooks.outcomes import EventFlagged
from booking.models import Booking
from booking.reservations import reservation_claim_for_payment, reservation_create, reservation_release
from booking.services import booking_cancel, listener_bookable
from common import locks
from common.errors import Conflict, Invalid, NotFound, NotPermitted
from common.ready import ready_notify, ready_wait
from subscriptions import selectors
from subscriptions.models import Subscription, SubscriptionInvoice, SubscriptionPlan, SubscriptionSession
from workers.notify import notification_enqueue
from workers.outbox import enqueue_or_leave_to_sweeper, enqueue_stale

logger = logging.getLogger(__name__)
User = get_user_model()
S = Subscription.Status
PERIOD_INVOICES = ("subscription_create", "subscription_cycle")
# An update that restarts the billing cycle (a change of interval) invoices the new period in full: a period
# invoice too when it has a line that is not a proration.
CYCLE_RESTART = "subscription_update"


# --- Plans --------------------------------------------------------------------------------------------


def plan_price_cents(plan: SubscriptionPlan) -> int:
    if plan.price_cents is not None:
        return plan.price_cents
    return money.to_cents(plan.package.price, money.default_currency())


def plan_fee_percent(plan: SubscriptionPlan):
    return plan.app_fee_percent if plan.app_fee_percent is not None else plan.package.app_fee_percentage


def plan_signature(plan: SubscriptionPlan) -> str:
    return f"{plan_price_cents(plan)}-{money.default_currency()}-{plan.interval}"


def plan_sync_enqueue(*, plan_id: int) -> None:
    SubscriptionPlan.objects.filter(pk=plan_id).update(sync_requested_at=timezone.now())
    transaction.on_commit(
        lambda: enqueue_or_leave_to_sweeper("subscriptions.plan_sync", plan_id, what="Stripe sync of plan")
    )


def plan_sync(*, plan_id: int) -> SubscriptionPlan:
    """Create or update the plan's Stripe Product, and a new Price when the amount or interval changed.
    Running subscriptions keep the Price they were created with (Stripe's rule, and ours)."""
    with transaction.atomic():
        plan = locks.lock(SubscriptionPlan.objects.select_related("package").filter(pk=plan_id)).get()
        if not plan.stripe_product_id:
            plan.stripe_product_id = gateway.product_create(plan_id=plan.pk, name=plan.display_name)
        else:
            gateway.product_update(product_id=plan.stripe_product_id, name=plan.display_name, active=plan.active)
        signature = plan_signature(plan)
        if signature != plan.synced_signature or not plan.stripe_price_id:
            old = plan.stripe_price_id
            plan.stripe_price_id = gateway.price_create(
                plan_id=plan.pk,
                product_id=plan.stripe_product_id,
                amount=plan_price_cents(plan),
                currency=money.default_currency(),
                interval=plan.interval,
            )
            plan.synced_signature = signature
            if old and old != plan.stripe_price_id:
                # Back to an amount sold before, within Stripe's 24 hours: the price's key answers the Price
                # created then, which we deactivated when we left it. Sell it again.
                gateway.price_activate(price_id=plan.stripe_price_id)
                gateway.price_deactivate(price_id=old)
        plan.sync_requested_at = None
        plan.save(
            update_fields=[
                "stripe_product_id",
                "stripe_price_id",
                "synced_signature",
                "sync_requested_at",
                "updated_at",
            ]
        )
        return plan


def plans_sweep_unsynced() -> int:
    return enqueue_stale(
        SubscriptionPlan.objects.filter(sync_requested_at__isnull=False),
        stamp_field="sync_requested_at",
        enqueue=lambda pk: enqueue_or_leave_to_sweeper("subscriptions.plan_sync", pk, what="Stripe sync of plan"),
    )


# --- Periods and occurrences --------------------------------------------------------------------------


def add_intervals(at: datetime, count: int, interval: str) -> datetime:
    """`at` + count weeks or months (a month keeps the day, clamped to the month's end, as Stripe does)."""
    if interval == SubscriptionPlan.Interval.WEEK:
        return at + timedelta(weeks=count)
    total = at.month - 1 + count
    year, month = at.year + total // 12, total % 12 + 1
    return at.replace(year=year, month=month, day=min(at.day, calendar.monthrange(year, month)[1]))


def _ts(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value else None


def _billing_segments(sub: Subscription) -> list[dict]:
    """The billing as Stripe ran it, oldest first: each change of interval started a segment at a new anchor."""
    current = {
        "anchor": sub.billing_anchor,
        "occurrence": sub.billing_anchor_occurrence,
        "interval": sub.plan.interval,
        "plan_id": sub.plan_id,
    }
    return [*sub.billing_history, current]


def occurrence_of(sub: Subscription, period_start: int) -> int | None:
    """Which period (0, 1, …) of the subscription starts at `period_start` (Stripe's timestamp)."""
    if sub.billing_anchor is None:
        return None
    segments = _billing_segments(sub)
    segment = next((seg for seg in reversed(segments) if seg["anchor"] - 3600 <= period_start), segments[0])
    anchor = _ts(segment["anchor"])
    start = _ts(period_start)
    interval = segment["interval"]
    assert anchor is not None and start is not None
    if interval == SubscriptionPlan.Interval.WEEK:
        k = round((start - anchor).total_seconds() / (7 * 86400))
    else:
        k = (start.year - anchor.year) * 12 + start.month - anchor.month
    if k < 0 or abs((add_intervals(anchor, k, interval) - start).total_seconds()) > 3600:
        return None
    return segment["occurrence"] + k


def plan_at(sub: Subscription, occurrence: int) -> SubscriptionPlan:
    """The plan that bills period `occurrence`: a pending change's from its first period, else the plan of
    the billing segment the period falls in."""
    if sub.pending_plan_id and sub.pending_occurrence is not None and occurrence >= sub.pending_occurrence:
        assert sub.pending_plan is not None
        return sub.pending_plan
    if occurrence >= sub.billing_anchor_occurrence or not sub.billing_history:
        return sub.plan
    segment = next(
        (seg for seg in reversed(sub.billing_history) if seg["occurrence"] <= occurrence), sub.billing_history[0]
    )
    return SubscriptionPlan.objects.select_related("package").get(pk=segment["plan_id"])


def slot_interval(sub: Subscription) -> str:
    """The interval of the standing slot as it stands from its anchor (a pending change's, once set)."""
    return plan_at(sub, sub.slot_anchor_occurrence).interval


def session_at(sub: Subscription, occurrence: int) -> datetime:
    return add_intervals(sub.slot_anchor_at, occurrence - sub.slot_anchor_occurrence, plan_at(sub, occurrence).interval)


def _current_occurrence(sub: Subscription) -> int:
    if sub.current_period_start is None:
        return 0
    k = occurrence_of(sub, int(sub.current_period_start.timestamp()))
    return k or 0


def _reserve(sub: Subscription, occurrence: int, plan: SubscriptionPlan) -> SubscriptionSession:
    shares = money.split(plan_price_cents(plan), plan_fee_percent(plan))
    booking = reservation_create(
        talker_id=sub.talker_id,
        listener_id=sub.listener_id,
        package=plan.package,
        scheduled_at=session_at(sub, occurrence),
        shares=shares,
        currency=sub.currency,
    )
    return SubscriptionSession.objects.create(subscription=sub, occurrence=occurrence, booking=booking)


def _session_for(sub: Subscription, occurrence: int) -> SubscriptionSession | None:
    """The occurrence's live session (a released reservation does not count; a later one may replace it)."""
    return (
        SubscriptionSession.objects.select_related("booking")
        .filter(subscription=sub, occurrence=occurrence)
        .exclude(booking__status=Booking.Status.CANCELLED)
        .order_by("-id")
        .first()
    )


def _top_up_reservations(sub: Subscription, *, after: int) -> None:
    """Keep the next SUBSCRIPTION_RESERVE_AHEAD occurrences after `after` held. An occurrence someone
    else booked in the meantime is left to its period (logged; its invoice is flagged if it gets paid)."""
    if sub.status in Subscription.ENDED or sub.cancel_at_period_end:
        return
    for k in range(after + 1, after + 1 + settings.SUBSCRIPTION_RESERVE_AHEAD):
        if _session_for(sub, k) is None:
            try:
                _reserve(sub, k, plan_at(sub, k))
            except Conflict:
                logger.warning("subscription %s: occurrence %s of its slot is taken", sub.pk, k)


def _release_reservations(sub: Subscription, *, from_occurrence: int = 0, reason: str) -> int:
    released = 0
    sessions = SubscriptionSession.objects.filter(
        subscription=sub, occurrence__gte=from_occurrence, booking__status=Booking.Status.RESERVED
    )
    for session in sessions:
        released += reservation_release(booking_id=session.booking_id, reason=reason)
    return released


def _slot_in_period(slot: datetime, period_start: datetime, interval: str, period: str) -> None:
    """A chosen slot must fall within the period it is the session of: [period_start, + one interval)."""
    period_end = add_intervals(period_start, 1, interval)
    if not period_start <= slot < period_end:
        raise Invalid(
            f"The slot must fall within {period} ({period_start:%Y-%m-%d %H:%M} UTC to "
            f"{period_end:%Y-%m-%d %H:%M} UTC).",
            field="next_session_at",
            code="out_of_range",
        )


# --- Creating a subscription --------------------------------------------------------------------------


def subscription_create(*, talker, listener_id: int, plan_id: int, first_session_at: datetime) -> Subscription:
    listener = listener_bookable(
        talker=talker,
        listener_id=listener_id,
        only_talkers="Only talkers can subscribe.",
        not_yourself="You cannot subscribe to yourself.",
    )
    plan = selectors.plan_list_active().filter(pk=plan_id).first()
    if plan is None:
        raise Invalid("No active subscription plan with this id.", field="plan_id", code="not_found")
    now = timezone.now()
    if first_session_at <= now:
        raise Invalid("The first session must be in the future.", field="first_session_at")
    if first_session_at > add_intervals(now, 1, plan.interval):
        raise Invalid(
            f"The first session must be within one {plan.interval} from now: each period pays its session ahead.",
            field="first_session_at",
            code="out_of_range",
        )
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=talker.pk).values_list("pk", flat=True).first()
        open_count = Subscription.objects.filter(talker=talker, status__in=(S.CREATING, S.INCOMPLETE)).count()
        if open_count >= settings.BOOKING_PENDING_MAX_PER_TALKER:
            raise Conflict(
                f"You already have {open_count} unpaid subscriptions; pay or cancel one first.",
                code="too_many_pending",
            )
        sub = Subscription.objects.create(
            talker=talker,
            listener=listener,
            plan=plan,
            first_session_at=first_session_at,
            slot_anchor_at=first_session_at,
            currency=money.default_currency(),
            stripe_requested_at=now,
        )
        for k in range(settings.SUBSCRIPTION_RESERVE_AHEAD):
            _reserve(sub, k, plan)
        transaction.on_commit(lambda: subscription_create_enqueue(subscription_id=sub.pk))
    return sub


def subscription_create_enqueue(*, subscription_id: int) -> bool:
    return enqueue_or_leave_to_sweeper(
        "subscriptions.subscription_create_on_stripe", subscription_id, what="Stripe subscription"
    )


def subscriptions_sweep_creating() -> int:
    return enqueue_stale(
        Subscription.objects.filter(status=S.CREATING, stripe_subscription_id__isnull=True),
        stamp_field="stripe_requested_at",
        enqueue=lambda pk: subscription_create_enqueue(subscription_id=pk),
    )


def subscriptions_expire_unpaid(*, limit: int = 100) -> int:
    """An incomplete subscription (its first invoice not paid) holds its reserved slots no longer than an
    unpaid booking holds one (BOOKING_PENDING_EXPIRY_MINUTES), not Stripe's 23 hours. Each is read from
    Stripe first: one paid meanwhile is applied as it stands (its invoice books it), only one still
    incomplete is cancelled there (Stripe voids its first invoice and cancels the PaymentIntent); the
    slots are released with it."""
    cutoff = timezone.now() - timedelta(minutes=settings.BOOKING_PENDING_EXPIRY_MINUTES)
    candidates = list(
        Subscription.objects.filter(status=S.INCOMPLETE, created_at__lt=cutoff)
        .exclude(stripe_subscription_id__isnull=True)
        .exclude(stripe_subscription_id="")
        .order_by("created_at")
        .values_list("pk", flat=True)[:limit]
    )
    expired = 0
    for pk in candidates:
        with transaction.atomic():
            sub = locks.lock(Subscription.objects.select_related("plan__package").filter(pk=pk)).get()
            if sub.status != S.INCOMPLETE:
                continue
            data = gateway.subscription_retrieve(_stripe_id(sub))
            if data.get("status") == S.INCOMPLETE:
                data = gateway.subscription_cancel(stripe_subscription_id=_stripe_id(sub))
                expired += 1
            _apply_subscription(sub, data)
    return expired


def subscription_create_on_stripe(*, subscription_id: int) -> Subscription:
    """Create the Stripe subscription once (row lock; idempotency key `subscription-<id>`)."""
    with transaction.atomic():
        sub = locks.lock(
            Subscription.objects.select_related("plan__package", "talker").filter(pk=subscription_id)
        ).get()
        if sub.stripe_subscription_id or sub.status != S.CREATING:
            return sub
        plan = sub.plan
        if not plan.stripe_price_id or plan.synced_signature != plan_signature(plan):
            plan = plan_sync(plan_id=plan.pk)
        customer_id = stripe_customer_get_or_create(user=sub.talker)
        try:
            data = gateway.subscription_create(
                subscription_id=sub.pk, customer_id=customer_id, price_id=plan.stripe_price_id
            )
        except stripe_gateway.PermanentStripeError as error:
            sub.status = S.FAILED
            sub.failure_message = error.message
            sub.save(update_fields=["status", "failure_message", "updated_at"])
            _release_reservations(sub, reason="The subscription could not be created on Stripe.")
            ready_notify(_ready_channel(sub.pk))
            return sub
        sub.stripe_subscription_id = data["id"]
        sub.stripe_customer_id = customer_id
        sub.stripe_price_id = plan.stripe_price_id
        sub.billing_anchor = data.get("billing_cycle_anchor")
        _apply_subscription(sub, data)
        invoice = data.get("latest_invoice")
        if isinstance(invoice, dict):
            _invoice_record(sub, invoice)
        ready_notify(_ready_channel(sub.pk))  # delivered on commit: the create request's wait
        return sub


def _ready_channel(subscription_id: int) -> str:
    return f"talkpay_subscription_{int(subscription_id)}"


def subscription_wait_created(*, subscription_id: int, timeout: float) -> Subscription:
    """The subscription once the worker has created it on Stripe (or failed to), or as it is after
    `timeout` seconds: woken by the worker's commit (LISTEN/NOTIFY), as create_booking's wait is."""
    return ready_wait(
        channel=_ready_channel(subscription_id),
        read=lambda: Subscription.objects.select_related("plan__package").get(pk=subscription_id),
        done=lambda sub: sub.status != S.CREATING,
        timeout=timeout,
    )


# --- Applying what Stripe says ------------------------------------------------------------------------


def _confirmation(invoice: dict | None) -> tuple[str, str]:
    secret = ((invoice or {}).get("confirmation_secret") or {}).get("client_secret") or ""
    return secret, secret.split("_secret_")[0] if secret else ""


def _apply_subscription(sub: Subscription, data: dict) -> bool:
    """Mirror the subscription as just read from Stripe. Stripe's state is fresh, so it is applied as it
    stands (statuses cycle: active ⇄ past_due); an ended subscription never comes back."""
    before = (
        sub.status,
        sub.current_period_start,
        sub.current_period_end,
        sub.cancel_at_period_end,
        sub.client_secret,
    )
    switched = _apply_pending_change(sub, data)
    if sub.status not in Subscription.ENDED:
        status = data.get("status") or sub.status
        if data.get("pause_collection") and status in (S.ACTIVE, S.PAST_DUE):
            status = S.PAUSED
        if status in S.values:
            sub.status = status
    items = ((data.get("items") or {}).get("data")) or []
    if items:
        sub.current_period_start = _ts(items[0].get("current_period_start"))
        sub.current_period_end = _ts(items[0].get("current_period_end"))
    sub.cancel_at_period_end = bool(data.get("cancel_at_period_end"))
    sub.canceled_at = _ts(data.get("canceled_at"))
    sub.ended_at = _ts(data.get("ended_at"))
    invoice = data.get("latest_invoice")
    if isinstance(invoice, dict):
        if invoice.get("status") == "open":
            secret, intent = _confirmation(invoice)
            if secret:
                sub.client_secret, sub.payment_intent_id = secret, intent
        elif invoice.get("status") in ("paid", "void"):
            sub.client_secret = ""
    sub.save()
    if sub.status in Subscription.ENDED:
        _release_reservations(sub, reason=f"Subscription {sub.status}.")
    elif sub.status == S.PAUSED:
        # nothing is billed while paused: the slot's unpaid reservations (from the period under way) go
        _release_reservations(sub, from_occurrence=_current_occurrence(sub), reason="Subscription paused.")
    elif before[0] == S.PAUSED and sub.status == S.ACTIVE and not sub.cancel_at_period_end:
        _top_up_reservations(sub, after=_current_occurrence(sub))
    elif sub.cancel_at_period_end:
        _release_reservations(sub, from_occurrence=_current_occurrence(sub) + 1, reason="Cancelled at period end.")
    after = (sub.status, sub.current_period_start, sub.current_period_end, sub.cancel_at_period_end, sub.client_secret)
    return switched or before != after


def _price_of(data: dict) -> str:
    items = ((data.get("items") or {}).get("data")) or []
    price = (items[0].get("price") if items else None) or ""
    return (price.get("id") if isinstance(price, dict) else price) or ""


def _apply_pending_change(sub: Subscription, data: dict) -> bool:
    """A change of interval waiting for its period: once Stripe's subscription bills the new price, our plan,
    interval and billing anchor switch (the old billing kept in `billing_history`). If its schedule is gone
    without it (released or canceled on Stripe), the change is forgotten and the slot stays as it was."""
    schedule = data.get("schedule")
    schedule_id = (schedule.get("id") if isinstance(schedule, dict) else schedule) or ""
    if not sub.pending_plan_id:
        if sub.stripe_schedule_id and not schedule_id:
            sub.stripe_schedule_id = ""
            sub.save(update_fields=["stripe_schedule_id", "updated_at"])
        return False
    if _price_of(data) == sub.pending_price_id and data.get("billing_cycle_anchor"):
        assert sub.pending_plan is not None and sub.pending_occurrence is not None
        sub.billing_history = [
            *sub.billing_history,
            {
                "anchor": sub.billing_anchor,
                "occurrence": sub.billing_anchor_occurrence,
                "interval": sub.plan.interval,
                "plan_id": sub.plan_id,
            },
        ]
        sub.billing_anchor = data["billing_cycle_anchor"]
        sub.billing_anchor_occurrence = sub.pending_occurrence
        sub.plan = sub.pending_plan
        sub.stripe_price_id = sub.pending_price_id
        _pending_clear(sub)
        if not schedule_id:
            sub.stripe_schedule_id = ""
        sub.save()
        return True
    if not schedule_id and sub.status not in Subscription.ENDED:
        _pending_forget(sub, reason="The change of plan was withdrawn on Stripe.")
        sub.stripe_schedule_id = ""
        sub.save(update_fields=["stripe_schedule_id", "updated_at"])
        return True
    return False


def _pending_clear(sub: Subscription) -> None:
    sub.pending_plan = None
    sub.pending_price_id = ""
    sub.pending_occurrence = None
    sub.pending_change_at = None


def _pending_forget(sub: Subscription, *, reason: str, top_up: bool = True) -> None:
    """Drop the pending change here: its reservations released, the slot back to the current one, the next
    occurrences held again on the current plan."""
    if not sub.pending_plan_id:
        return
    cur = _current_occurrence(sub)
    _release_reservations(sub, from_occurrence=cur + 1, reason=reason)
    current = _session_for(sub, cur)
    if current is not None:
        sub.slot_anchor_at, sub.slot_anchor_occurrence = current.booking.scheduled_at, cur
    _pending_clear(sub)
    sub.save()
    if top_up:
        _top_up_reservations(sub, after=cur)


def _schedule_release(sub: Subscription) -> None:
    """Stop the subscription's schedule (a change of interval planned, or its last phase still running):
    Stripe lets a schedule-managed subscription's cancellation be changed only through the schedule."""
    if not sub.stripe_schedule_id:
        return
    schedule = gateway.schedule_retrieve(sub.stripe_schedule_id)
    if schedule.get("status") in ("not_started", "active"):
        gateway.schedule_release(sub.stripe_schedule_id)
    sub.stripe_schedule_id = ""
    sub.save(update_fields=["stripe_schedule_id", "updated_at"])


def _lock_ours(stripe_subscription_id: str) -> Subscription | None:
    if not stripe_subscription_id:
        return None
    return locks.lock(
        Subscription.objects.select_related("plan__package").filter(stripe_subscription_id=stripe_subscription_id)
    ).first()


def subscription_sync(*, stripe_subscription_id: str) -> bool:
    """customer.subscription.*: re-read the subscription and apply it. False when it is not ours."""
    sub = _lock_ours(stripe_subscription_id)
    if sub is None:
        return False
    data = gateway.subscription_retrieve(stripe_subscription_id)
    if data.get("customer") != sub.stripe_customer_id:
        raise EventFlagged(f"Stripe subscription {stripe_subscription_id} is not of customer {sub.stripe_customer_id}")
    return _apply_subscription(sub, data)


def schedule_sync(*, stripe_schedule_id: str) -> bool:
    """subscription_schedule.*: re-read the schedule, then the subscription it manages (or managed) as
    subscription_sync does. False when it is not of one of ours."""
    schedule = gateway.schedule_retrieve(stripe_schedule_id)
    return subscription_sync(stripe_subscription_id=gateway.schedule_subscription_id(schedule))


def invoice_sync(*, stripe_invoice_id: str) -> bool:
    """invoice.* and invoice_payment.*: re-read the invoice and apply it to our subscription. False when
    the invoice is not of one of our subscriptions."""
    invoice = gateway.invoice_retrieve(stripe_invoice_id)
    sub = _lock_ours(gateway.invoice_subscription_id(invoice))
    if sub is None:
        return False
    if invoice.get("customer") != sub.stripe_customer_id:
        raise EventFlagged(f"Invoice {stripe_invoice_id} is not of customer {sub.stripe_customer_id}")
    # The subscription's own state (past_due, active again, a change of interval applied) follows from a read
    # of it; a switched plan is applied first, so the new period's invoice is booked on the new plan.
    data = gateway.subscription_retrieve(_stripe_id(sub))
    switched = _apply_pending_change(sub, data)
    changed = _invoice_record(sub, invoice)
    changed = _apply_subscription(sub, data) or changed or switched
    return changed


def _invoice_record(sub: Subscription, invoice: dict) -> bool:
    row, created = SubscriptionInvoice.objects.get_or_create(
        stripe_invoice_id=invoice["id"], defaults={"subscription": sub, "currency": sub.currency}
    )
    if row.subscription_id != sub.pk:
        raise EventFlagged(f"Invoice {invoice['id']} is recorded for subscription {row.subscription_id}")
    row = locks.lock(SubscriptionInvoice.objects.filter(pk=row.pk)).get()
    before = (row.status, row.amount_paid, row.attempt_count, row.booking_id, row.payment_intent_id)
    row.billing_reason = invoice.get("billing_reason") or ""
    row.period_start = _ts(invoice.get("period_start"))
    row.period_end = _ts(invoice.get("period_end"))
    row.amount_due = invoice.get("amount_due") or 0
    row.amount_paid = invoice.get("amount_paid") or 0
    row.currency = (invoice.get("currency") or sub.currency).lower()
    row.status = invoice.get("status") or ""
    row.attempt_count = invoice.get("attempt_count") or 0
    row.payment_intent_id = (
        gateway.invoice_payment_intent_id(invoice) or _confirmation(invoice)[1] or row.payment_intent_id
    )
    lines = ((invoice.get("lines") or {}).get("data")) or []
    starts = [ln["period"]["start"] for ln in lines if not _is_proration(ln) and ln.get("period")]
    is_period = row.billing_reason in PERIOD_INVOICES or (row.billing_reason == CYCLE_RESTART and starts)
    if is_period and invoice.get("period_start") and row.occurrence is None:
        # A renewal invoice's period is the new period: its lines say which (the invoice's own
        # period_start/end are those of the lines for create, and the new period for cycles). Once known
        # it stays: the billing anchor moves on a change of interval.
        row.occurrence = occurrence_of(sub, starts[0] if starts else invoice["period_start"])
    row.save()
    failed_attempts_before = before[2]
    if row.status == "paid" and row.booking_id is None:
        _invoice_book(sub, row)
    elif row.status == "void" and row.occurrence is not None:
        session = _session_for(sub, row.occurrence)
        if session is not None:
            reservation_release(booking_id=session.booking_id, reason="The period's invoice was voided.")
    elif (
        row.status == "open"
        and row.attempt_count > failed_attempts_before
        and row.billing_reason != "subscription_create"
    ):
        notification_enqueue("subscriptions.notify_renewal_failed", row.pk)
    after = (row.status, row.amount_paid, row.attempt_count, row.booking_id, row.payment_intent_id)
    return created or before != after


def is_period_invoice(row: SubscriptionInvoice) -> bool:
    """A period's invoice (its booking's), as opposed to a proration-only update."""
    if row.occurrence is None:
        return False
    return row.billing_reason in PERIOD_INVOICES or row.billing_reason == CYCLE_RESTART


def _is_proration(line: dict) -> bool:
    details = ((line.get("parent") or {}).get("subscription_item_details")) or {}
    return bool(details.get("proration"))


def _invoice_book(sub: Subscription, row: SubscriptionInvoice) -> None:
    """A paid period: its booking, confirmed and booked through billing with what Stripe took."""
    if not is_period_invoice(row) or row.occurrence is None:
        if row.amount_paid:
            row.review_reason = f"paid {row.billing_reason} invoice is not a period of the standing slot"
            row.save(update_fields=["review_reason", "updated_at"])
        return
    if row.currency != sub.currency:
        row.review_reason = f"Stripe charged {row.currency}; the subscription is in {sub.currency}"
        row.save(update_fields=["review_reason", "updated_at"])
        return
    if row.amount_paid <= 0:
        return  # paid entirely from the customer's credit: nothing was charged, nothing to book
    if not row.payment_intent_id:
        raise EventFlagged(f"paid invoice {row.stripe_invoice_id} names no PaymentIntent")
    session = _session_for(sub, row.occurrence)
    if session is None:
        try:
            session = _reserve(sub, row.occurrence, plan_at(sub, row.occurrence))
        except Conflict:
            row.review_reason = "paid, but the occurrence's slot was taken by another booking"
            row.save(update_fields=["review_reason", "updated_at"])
            return
    shares = money.split(row.amount_paid, plan_fee_percent(plan_at(sub, row.occurrence)))
    booking = reservation_claim_for_payment(booking_id=session.booking_id, shares=shares)
    intent = stripe_gateway.payment_intent_retrieve(row.payment_intent_id)
    if intent.get("status") != "succeeded" or intent.get("amount_received") != row.amount_paid:
        raise EventFlagged(
            f"invoice {row.stripe_invoice_id} is paid {row.amount_paid} but its PaymentIntent {intent.get('id')} "
            f"is {intent.get('status')} with {intent.get('amount_received')}"
        )
    charge = intent.get("latest_charge")
    charge_id = str((charge.get("id") if isinstance(charge, dict) else charge) or "")
    payment_record_for_paid_invoice(booking=booking, payment_intent_id=row.payment_intent_id, charge_id=charge_id)
    row.booking_id = booking.pk
    row.save(update_fields=["booking", "updated_at"])
    _top_up_reservations(sub, after=row.occurrence)


# --- Talker and listener actions ----------------------------------------------------------------------


def _participant_lock(*, subscription_id: int, user) -> Subscription:
    sub = locks.lock(Subscription.objects.select_related("plan__package").filter(pk=subscription_id)).first()
    if sub is None or user.pk not in (sub.talker_id, sub.listener_id):
        raise NotFound("No subscription of yours has this id.")
    return sub


def _stripe_id(sub: Subscription) -> str:
    return sub.stripe_subscription_id or ""


def _live(sub: Subscription) -> None:
    if sub.status in Subscription.ENDED:
        raise Conflict(f"This subscription is {sub.status}.", field="status", code="invalid_state")
    if not sub.stripe_subscription_id:
        raise Conflict("This subscription is still being created; retry shortly.", field="status", code="not_ready")


@transaction.atomic
def subscription_cancel(*, subscription_id: int, user, at_period_end: bool = True) -> Subscription:
    """At period end: the current period's session stays, nothing more is billed. Now: Stripe stops the
    subscription and the current period's session, if it has not started, is cancelled and refunded by
    the cancellation policy (booking.services.booking_cancel → billing refunds)."""
    sub = _participant_lock(subscription_id=subscription_id, user=user)
    _live(sub)
    # A planned change of interval is dropped; the schedule is released first, as Stripe requires.
    _schedule_release(sub)
    _pending_forget(sub, reason="The subscription was cancelled.", top_up=False)
    if at_period_end and sub.status == S.PAUSED:
        # a paused period never ends on Stripe: it ends now, the current period's paid session stays
        _apply_subscription(sub, gateway.subscription_cancel(stripe_subscription_id=_stripe_id(sub)))
        return sub
    if at_period_end:
        data = gateway.subscription_update(
            stripe_subscription_id=_stripe_id(sub),
            idempotency_key=f"subscription-{sub.pk}-cancel-at-period-end",
            cancel_at_period_end=True,
        )
        _apply_subscription(sub, data)
        return sub
    # A renewal Stripe has just charged, whose events we have not processed yet, is the current period:
    # record (and book) it first, so it is the session cancelled and refunded by the policy.
    latest = gateway.subscription_retrieve(_stripe_id(sub)).get("latest_invoice")
    latest_id = (latest.get("id") if isinstance(latest, dict) else latest) or ""
    if latest_id:
        invoice_sync(stripe_invoice_id=latest_id)
    data = gateway.subscription_cancel(stripe_subscription_id=_stripe_id(sub))
    _apply_subscription(sub, data)
    current = (
        SubscriptionInvoice.objects.filter(subscription=sub, booking__status=Booking.Status.CONFIRMED)
        .order_by("-occurrence")
        .values_list("booking_id", flat=True)
        .first()
    )
    if current is not None:
        try:
            booking_cancel(booking_id=current, user=user, reason=f"Subscription #{sub.pk} cancelled")
        except Conflict as refused:
            # Stripe has cancelled the subscription already: so do we. The session stays as it is (disputed
            # once: the bank and an operator settle it; started meanwhile: it takes place), not refunded.
            logger.warning("subscription %s cancelled; booking %s not cancelled: %s", sub.pk, current, refused)
    return sub


@transaction.atomic
def subscription_pause(*, subscription_id: int, user) -> Subscription:
    """Pause on Stripe (status `paused`: no invoices, the period does not advance). The current period's
    session stays booked and paid; the reservations ahead are released, the listener's time is free again.
    Pausing a paused subscription answers it as it is."""
    sub = _participant_lock(subscription_id=subscription_id, user=user)
    _live(sub)
    if sub.talker_id != user.pk:
        raise NotPermitted("Only the talker can pause the subscription.")
    if sub.status == S.PAUSED:
        return sub
    if sub.status not in (S.ACTIVE, S.PAST_DUE):
        raise Conflict(
            f"Only an active or past-due subscription can be paused; this one is {sub.status}.",
            field="status",
            code="invalid_state",
        )
    if sub.pending_plan_id:
        raise Conflict(
            "A change of plan is planned for the next period; change back to the current plan first.",
            field="plan_id",
            code="invalid_state",
        )
    if sub.cancel_at_period_end:
        raise Conflict(
            "This subscription ends at the end of its period.", field="cancel_at_period_end", code="invalid_state"
        )
    _schedule_release(sub)  # a finished change's schedule still attached (Stripe pauses none with one)
    data = gateway.subscription_pause(
        stripe_subscription_id=_stripe_id(sub),
        idempotency_key=f"subscription-{sub.pk}-pause-{timezone.now():%Y%m%d%H%M%S%f}",
    )
    _apply_subscription(sub, data)
    return sub


@transaction.atomic
def subscription_resume(*, subscription_id: int, user, next_session_at: datetime | None = None) -> Subscription:
    """Resume on the same billing anchor: the period under way is not billed (nor booked), the next one
    renews as usual, on the standing slot or on `next_session_at` (within that next period). Its session is
    reserved once Stripe has answered with the period; if the slot is taken or `next_session_at` falls
    outside it, Stripe is paused again and the resume refused (nothing was charged)."""
    sub = _participant_lock(subscription_id=subscription_id, user=user)
    _live(sub)
    if sub.talker_id != user.pk:
        raise NotPermitted("Only the talker can resume the subscription.")
    current = gateway.subscription_retrieve(_stripe_id(sub))
    stamp = f"{timezone.now():%Y%m%d%H%M%S%f}"
    if current.get("pause_collection"):
        # paused on Stripe's side with pause_collection (the Dashboard's "pause payment collection")
        data = gateway.subscription_update(
            stripe_subscription_id=_stripe_id(sub),
            idempotency_key=f"subscription-{sub.pk}-resume-{stamp}",
            pause_collection="",
        )
    elif current.get("status") == S.PAUSED:
        data = gateway.subscription_resume(
            stripe_subscription_id=_stripe_id(sub), idempotency_key=f"subscription-{sub.pk}-resume-{stamp}"
        )
    else:
        _apply_subscription(sub, current)
        return sub  # not paused: nothing to resume
    _apply_subscription(sub, data)
    nxt = _current_occurrence(sub) + 1
    try:
        if next_session_at is not None:
            assert sub.current_period_end is not None
            _slot_in_period(next_session_at, sub.current_period_end, sub.plan.interval, "the first period billed again")
            _release_reservations(sub, from_occurrence=nxt, reason="The subscription resumed on another slot.")
            sub.slot_anchor_at, sub.slot_anchor_occurrence = next_session_at, nxt
            sub.save(update_fields=["slot_anchor_at", "slot_anchor_occurrence", "updated_at"])
        if _session_for(sub, nxt) is None:
            try:
                _reserve(sub, nxt, plan_at(sub, nxt))
            except Conflict:
                raise Conflict(
                    f"The slot's next session ({session_at(sub, nxt):%Y-%m-%d %H:%M} UTC) was booked by someone "
                    "else while the subscription was paused; resume with another next_session_at.",
                    field="next_session_at",
                    code="slot_taken",
                ) from None
    except (Invalid, Conflict):
        _repause(sub, current, stamp)
        raise
    _top_up_reservations(sub, after=nxt - 1)
    return sub


def _repause(sub: Subscription, before: dict, stamp: str) -> None:
    """Undo a resume that Stripe made but we refuse (nothing was charged: the period under way is not billed)."""
    if before.get("pause_collection"):
        gateway.subscription_update(
            stripe_subscription_id=_stripe_id(sub),
            idempotency_key=f"subscription-{sub.pk}-repause-{stamp}",
            pause_collection={"behavior": before["pause_collection"]["behavior"]},
        )
    else:
        gateway.subscription_pause(
            stripe_subscription_id=_stripe_id(sub), idempotency_key=f"subscription-{sub.pk}-repause-{stamp}"
        )


@transaction.atomic
def subscription_change(
    *, subscription_id: int, user, plan_id: int | None = None, next_session_at: datetime | None = None
) -> Subscription:
    """Another plan and/or another slot, from the next period. A plan of the same interval: Stripe prorates
    the price change (credited and charged on the next invoice, which that period's booking then carries).
    A plan of the other interval: a Stripe subscription schedule switches the price at the current period's
    end, where the billing cycle restarts and the new period is invoiced (`_change_across_intervals`)."""
    sub = _participant_lock(subscription_id=subscription_id, user=user)
    _live(sub)
    if sub.talker_id != user.pk:
        raise NotPermitted("Only the talker can change the subscription.")
    if plan_id is None and next_session_at is None:
        raise Invalid("Give plan_id, next_session_at or both.", field="plan_id")
    plan = sub.plan
    if plan_id is None and sub.pending_plan is not None:
        plan = sub.pending_plan  # another slot for the planned plan
    elif plan_id is not None and plan_id == sub.pending_plan_id and sub.pending_plan is not None:
        plan = sub.pending_plan
    elif plan_id is not None and plan_id != sub.plan_id:
        chosen = selectors.plan_list_active().filter(pk=plan_id).first()
        if chosen is None:
            raise Invalid("No active subscription plan with this id.", field="plan_id", code="not_found")
        plan = chosen
    if plan.interval != sub.plan.interval:
        return _change_across_intervals(sub, plan, next_session_at)
    if sub.pending_plan_id:
        # back to this interval: the planned change of interval is withdrawn first
        _schedule_release(sub)
        _pending_forget(sub, reason="The planned change of plan was replaced.", top_up=False)
    nxt = _current_occurrence(sub) + 1
    if next_session_at is not None:
        assert sub.current_period_end is not None
        _slot_in_period(next_session_at, sub.current_period_end, sub.plan.interval, "the next period")
        sub.slot_anchor_at, sub.slot_anchor_occurrence = next_session_at, nxt
    # Move the reservations first (a taken slot refuses the change before Stripe hears of it).
    _release_reservations(sub, from_occurrence=nxt, reason="The subscription moved to another plan or slot.")
    sub.plan = plan
    sub.save(update_fields=["plan", "slot_anchor_at", "slot_anchor_occurrence", "updated_at"])
    for k in range(nxt, nxt + settings.SUBSCRIPTION_RESERVE_AHEAD):
        _reserve(sub, k, plan)
    if plan.stripe_price_id != sub.stripe_price_id:
        if not plan.stripe_price_id or plan.synced_signature != plan_signature(plan):
            plan = plan_sync(plan_id=plan.pk)
        current = gateway.subscription_retrieve(_stripe_id(sub))
        item_id = current["items"]["data"][0]["id"]
        data = gateway.subscription_update(
            stripe_subscription_id=_stripe_id(sub),
            # One key per change: a key naming only the price would replay the first change's answer when the
            # talker comes back to that price within Stripe's 24 hours, and Stripe would stay on the other.
            idempotency_key=f"subscription-{sub.pk}-price-{plan.stripe_price_id}-{timezone.now():%Y%m%d%H%M%S%f}",
            items=[{"id": item_id, "price": plan.stripe_price_id}],
            proration_behavior="create_prorations",
        )
        sub.stripe_price_id = plan.stripe_price_id
        sub.save(update_fields=["stripe_price_id", "updated_at"])
        _apply_subscription(sub, data)
    return sub


def _derived_slot(sub: Subscription, occurrence: int, interval: str, period_start: datetime) -> datetime:
    """The first session of the period starting at `period_start` on the current slot's pattern: the same
    weekday and time (weekly) or day of the month and time (monthly) as occurrence `occurrence`'s session."""
    current = _session_for(sub, occurrence)
    base = current.booking.scheduled_at if current is not None else session_at(sub, occurrence)
    steps = 0
    while add_intervals(base, steps, interval) < period_start:
        steps += 1
    return add_intervals(base, steps, interval)


def _change_across_intervals(
    sub: Subscription, plan: SubscriptionPlan, next_session_at: datetime | None
) -> Subscription:
    """From the next period on `plan` (the other interval). Reservations move now: the slot's first session
    on the new interval falls within the new period (`next_session_at`, else derived from the current slot).
    On Stripe a schedule keeps the current price until the current period ends, then the new price's phase
    restarts the billing cycle there; `_apply_pending_change` switches our plan when Stripe shows it."""
    if sub.cancel_at_period_end:
        raise Conflict(
            "This subscription ends at the end of its period; resubscribe to change its plan.",
            field="cancel_at_period_end",
            code="invalid_state",
        )
    effective = sub.current_period_end
    assert effective is not None
    cur = _current_occurrence(sub)
    nxt = cur + 1
    window_end = add_intervals(effective, 1, plan.interval)
    if next_session_at is None:
        next_session_at = _derived_slot(sub, cur, plan.interval, effective)
        if next_session_at >= window_end:
            raise Invalid(
                "The current slot does not fall within the new plan's first period; give next_session_at.",
                field="next_session_at",
                code="out_of_range",
            )
    _slot_in_period(next_session_at, effective, plan.interval, "the new plan's first period")
    if not plan.stripe_price_id or plan.synced_signature != plan_signature(plan):
        plan = plan_sync(plan_id=plan.pk)
    # Reservations first: a taken slot refuses the change before Stripe hears of it.
    _release_reservations(sub, from_occurrence=nxt, reason="The subscription moves to another plan.")
    sub.slot_anchor_at, sub.slot_anchor_occurrence = next_session_at, nxt
    sub.pending_plan = plan
    sub.pending_price_id = plan.stripe_price_id
    sub.pending_occurrence = nxt
    sub.pending_change_at = effective
    sub.save()
    for k in range(nxt, nxt + settings.SUBSCRIPTION_RESERVE_AHEAD):
        _reserve(sub, k, plan)
    stamp = f"{timezone.now():%Y%m%d%H%M%S%f}"
    schedule = gateway.schedule_retrieve(sub.stripe_schedule_id) if sub.stripe_schedule_id else {}
    if schedule.get("status") not in ("not_started", "active"):
        schedule = gateway.schedule_create_from_subscription(
            stripe_subscription_id=_stripe_id(sub), idempotency_key=f"subscription-{sub.pk}-schedule-{stamp}"
        )
    phase_start = (schedule.get("current_phase") or {}).get("start_date") or schedule["phases"][0]["start_date"]
    gateway.schedule_update(
        schedule_id=schedule["id"],
        idempotency_key=f"subscription-{sub.pk}-schedule-phases-{stamp}",
        end_behavior="release",
        phases=[
            {
                "items": [{"price": sub.stripe_price_id, "quantity": 1}],
                "start_date": phase_start,
                "end_date": int(effective.timestamp()),
            },
            {
                "items": [{"price": plan.stripe_price_id, "quantity": 1}],
                "billing_cycle_anchor": "phase_start",
                "proration_behavior": "create_prorations",
            },
        ],
    )
    sub.stripe_schedule_id = schedule["id"]
    sub.save(update_fields=["stripe_schedule_id", "updated_at"])
    return sub
