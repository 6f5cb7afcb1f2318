"""The webhook endpoint's service: verify, store once, enqueue on commit. Nothing else runs here, so
Stripe gets its 2xx fast and a slow handler never makes Stripe retry a delivery we already hold."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from billing import stripe_gateway
from billing.models import WebhookEvent, WebhookRejection
from billing.webhooks.dispatch import webhook_handler_for
from billing.webhooks.processing import webhook_event_enqueue
from common.errors import Invalid
from common.prepared import row_insert

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "Stripe-Signature"
# Rejections are kept for audit, but an attacker must not be able to fill the database: each record
# is truncated, and only the newest REJECTIONS_KEPT are kept.
REJECTIONS_KEPT = 1000
_REJECTION_PRUNE_EVERY = 100
# Headers kept with each event (for audit and replay), each value capped.
_HEADERS_KEPT = 40
_HEADER_VALUE_MAX = 1024


@dataclass(frozen=True)
class WebhookReceipt:
    webhook_event_id: int
    stripe_event_id: str
    created: bool
    enqueued: bool


def webhook_secrets() -> list[str]:
    """The secrets of both endpoints that deliver here, the platform's and the Connect one's (Stripe
    sends connected accounts' events only to a Connect endpoint), and during a rotation the previous
    ones still accepted."""
    candidates = [
        settings.STRIPE_WEBHOOK_SECRET,
        settings.STRIPE_CONNECT_WEBHOOK_SECRET,
        *settings.STRIPE_WEBHOOK_SECRETS_OLD,
        *settings.STRIPE_CONNECT_WEBHOOK_SECRETS_OLD,
    ]
    return [secret for secret in candidates if secret]


def webhook_rejection_record(*, reason: str, remote_addr: str, signature_header: str, body: bytes) -> None:
    rejection = WebhookRejection.objects.create(
        reason=reason[:255],
        remote_addr=remote_addr[:64],
        signature_header=signature_header[:512],
        body_excerpt=body[:512].decode("utf-8", errors="replace").replace("\x00", "\ufffd")[:512],
    )
    if rejection.pk % _REJECTION_PRUNE_EVERY == 0:
        WebhookRejection.objects.filter(pk__lte=rejection.pk - REJECTIONS_KEPT).delete()


def _reject(reason: str, *, remote_addr: str, signature_header: str, body: bytes) -> Invalid:
    logger.warning("webhook rejected from %s: %s", remote_addr or "?", reason)
    webhook_rejection_record(reason=reason, remote_addr=remote_addr, signature_header=signature_header, body=body)
    return Invalid(f"Invalid webhook signature: {reason}", field=SIGNATURE_HEADER, code="invalid_signature")


# stripe_created is a bigint.
_CREATED_MAX = 2**63 - 1


def _contains_nul(value: object) -> bool:
    """Whether any key or string holds NUL, which PostgreSQL cannot store in text or jsonb."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _event_from_body(body: bytes) -> dict:
    try:
        event = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise Invalid("The body is not UTF-8 JSON.", code="invalid_payload") from error
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise Invalid("The body is not a Stripe event.", code="invalid_payload")
    if not isinstance((event.get("data") or {}).get("object"), dict):
        raise Invalid("The event has no data.object.", code="invalid_payload")
    # Checked here, not left to the database: a signed but malformed event is a 400 Stripe can see.
    if b"\\u0000" in body and _contains_nul(event):
        raise Invalid("The event contains a NUL character.", code="invalid_payload")
    created = event.get("created")
    if created is not None and (type(created) is not int or not 0 <= created <= _CREATED_MAX):
        raise Invalid("created must be a Unix timestamp.", field="created", code="invalid_payload")
    for name in ("account", "api_version"):
        if event.get(name) is not None and not isinstance(event[name], str):
            raise Invalid(f"{name} must be a string.", field=name, code="invalid_payload")
    return event


def _kept_headers(headers: dict[str, str]) -> dict[str, str]:
    kept = {}
    for name, value in list(headers.items())[:_HEADERS_KEPT]:
        kept[str(name)[:100]] = str(value)[:_HEADER_VALUE_MAX]
    return kept


def webhook_receive(
    *, body: bytes, signature_header: str | None, headers: dict[str, str], remote_addr: str = ""
) -> WebhookReceipt:
    """Verify a delivery, store its event once and enqueue its processing when that commits.

    A duplicate delivery stores nothing new; it enqueues the event again only while it is not done
    (pending, or failed after its last try: a redelivery is a second chance). When a worker holds the
    event's lock right now, the duplicate is simply acknowledged: that worker is processing it.
    """
    try:
        stripe_gateway.webhook_verify(
            payload=body,
            signature_header=signature_header,
            secrets=webhook_secrets(),
            tolerance=settings.STRIPE_WEBHOOK_TOLERANCE,
        )
    except stripe_gateway.SignatureError as error:
        raise _reject(str(error), remote_addr=remote_addr, signature_header=signature_header or "", body=body)
    event = _event_from_body(body)

    # A type no handler takes (customer.created, payment_intent.created, charge.succeeded, ...: an
    # endpoint subscribed to every event gets them) is stored as ignored, as a worker would have marked
    # it, and no task is spent on it. A replay (admin, `manage.py replay_webhook`) runs it again once a
    # handler exists.
    handled = webhook_handler_for(str(event["type"])) is not None
    try:
        with transaction.atomic():
            # Every delivery inserts: the INSERT kept compiled (common.prepared).
            stored = row_insert(
                WebhookEvent,
                stripe_event_id=event["id"][:255],
                type=event["type"][:100],
                account=(event.get("account") or "")[:255],
                livemode=bool(event.get("livemode")),
                api_version=(event.get("api_version") or "")[:64],
                stripe_created=int(event.get("created") or 0),
                payload=event,
                raw_body=body.decode("utf-8"),
                headers=_kept_headers(headers),
                **({} if handled else {"status": WebhookEvent.Status.IGNORED, "processed_at": timezone.now()}),
            )
            if handled:
                transaction.on_commit(lambda: webhook_event_enqueue(webhook_event_id=stored.pk))
        return WebhookReceipt(stored.pk, stored.stripe_event_id, created=True, enqueued=handled)
    except IntegrityError:
        pass

    with transaction.atomic():
        # skip_locked: a worker processing this event holds its row; waiting for it would make
        # Stripe wait too, and that worker will finish or retry the event anyway.
        row = (
            WebhookEvent.objects.select_for_update(skip_locked=True)
            .filter(stripe_event_id=event["id"])
            .values("pk", "status")
            .first()
        )
        if row is None:
            pk = WebhookEvent.objects.filter(stripe_event_id=event["id"]).values_list("pk", flat=True).get()
            return WebhookReceipt(pk, event["id"], created=False, enqueued=False)
        WebhookEvent.objects.filter(pk=row["pk"]).update(deliveries=F("deliveries") + 1)
        again = row["status"] in (WebhookEvent.Status.PENDING, WebhookEvent.Status.FAILED)
        if again:
            transaction.on_commit(lambda: webhook_event_enqueue(webhook_event_id=row["pk"]))
    return WebhookReceipt(row["pk"], event["id"], created=False, enqueued=again)
