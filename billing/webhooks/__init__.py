"""Stripe webhooks: stored once at intake, processed once by a worker, dispatched by event type.

Flow
    `intake.webhook_receive` (the view's service) checks `Stripe-Signature` on the raw body, stores the
    event once (unique on Stripe's event id) with its raw body and headers, and enqueues
    `billing.webhook_process` when that commits. `processing.webhook_event_process` (the task's service)
    locks the `WebhookEvent` row, calls the handler for its type inside the same transaction and stores
    the outcome (processed, ignored, or failed with the error). `processing.webhook_event_replay` runs
    an event again on demand (admin action, `manage.py replay_webhook`).

Handler contract (other areas add their own tables; keep it exactly)
    A handler is `def handle(event: dict) -> str`. `event` is the verified Stripe event as a plain
    dict, full payload: `id`, `type`, `account` (Connect events), `created`, `data.object`,
    `data.previous_attributes`. It is called inside a database transaction while the WebhookEvent row
    is locked (`select_for_update`), so it must not commit on its own. It returns `"processed"` (state
    changed) or `"ignored"` (nothing to do: not ours, stale, already applied); raising means failure,
    and the event is retried with backoff, then left visibly failed and replayable. Handlers must be
    idempotent: replaying a processed event changes nothing. Rows are locked in one fixed order:
    payment → refund → booking → earning (then whatever the area owns), so handlers never deadlock.

Dispatch table (`dispatch.webhook_handlers()`)
    The merge of per-area tables, each a `HANDLERS: dict[str, Callable[[dict], str]]`:
    `billing.webhooks.payments` (payment_intent.*), `billing.webhooks.refunds` (charge.refunded,
    charge.refund.updated), and, when the modules exist, `billing.webhooks.disputes` (or
    `billing.disputes`) and `payouts.webhook_handlers`. A type claimed by two tables is a programming
    error (raised when the table is built). Types without a handler are recorded and acknowledged as ignored.

States only move forward (`payments.STATUS_RANK`). A state-changing event is matched to an object we
created by the id we stored, and the object's current state is read from Stripe and applied, not the
payload's (payment intents, accounts); a payload that Stripe contradicts, or an object that disagrees
with our records, raises `outcomes.EventFlagged`: nothing is applied and the event waits for an operator.
"""
