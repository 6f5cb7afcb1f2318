"""`Idempotency-Key` for unsafe API requests: a retried request gets the first answer, not a second effect.

The key is claimed in its own committed row before the work runs, so two concurrent requests with
one key cannot both run. A different body under a used key is refused (422), as Stripe does.

Crash safety (a gunicorn worker killed, a database connection dropped mid-request):

- The work (`perform`) runs in one transaction that first row-locks the claim, then writes the work's
  result onto it: the answer is committed with the booking, or neither is. A request that dies after
  that commit leaves a claim that is answered, and its retry replays what was committed.
- A retry that finds the claim unanswered waits for the claim's row lock (at most
  IDEMPOTENCY_LOCK_WAIT_SECONDS): while the first request is still inside its transaction it holds the
  lock, and once it commits the retry answers from it. A request that died released its lock with its
  connection. A claim that is unanswered, unlocked and older than IDEMPOTENCY_LEASE_SECONDS belonged to
  a request that died before its transaction: the retry takes it over (a new claim token, so the dead
  request's work, should it ever wake, refuses to commit under the key) and runs the work itself.
- A younger unanswered claim is a request that has not reached its transaction yet: 409, retry shortly.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone
from rest_framework.response import Response

from web.api.errors import ApiError
from web.models import IdempotencyRecord

HEADER = "Idempotency-Key"
# What a claim's answer is while only the work's own result is known (the response is built from it).
COMMITTED_STATUS = 202


def _fingerprint(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _in_use() -> ApiError:
    return ApiError(
        "A request with this Idempotency-Key is still being processed; retry shortly.",
        field=HEADER,
        code="idempotency_key_in_use",
        status_code=409,
    )


def _lock_wait(seconds: float) -> None:
    """Bound the wait for the claim's row lock (PostgreSQL; SQLite serialises writers anyway)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{int(seconds * 1000)}ms"])


def _claim_locked(record_id: int, *, wait: float | None) -> IdempotencyRecord | None:
    """The claim row-locked inside the current transaction; None when another request holds it longer
    than `wait` seconds. `wait=None` for a claim this request has just made: only a request that took
    it over (its lease ran out) can hold it then, for as long as its own work, so the lock is waited for
    without the bound and its three statements (lock_timeout set and reset, a savepoint)."""
    if wait is None:
        return IdempotencyRecord.objects.select_for_update().get(pk=record_id)
    _lock_wait(wait)
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.select_for_update().get(pk=record_id)
    except OperationalError:  # lock_timeout: the holder is alive and still working
        return None
    finally:
        _lock_wait(0)  # back to no limit for the work itself


def _replay(record: IdempotencyRecord, respond: Callable[[dict], Response]) -> Response:
    assert record.response_status is not None
    if record.response_status < 400:
        response = respond(record.response_body)
    else:
        response = Response(record.response_body, status=record.response_status)
    response["Idempotent-Replayed"] = "true"
    return response


def _perform_under_claim(
    record_id: int, token: str, perform: Callable[[], dict], *, wait: float | None
) -> dict | IdempotencyRecord:
    """Run `perform` and record its result on the claim, in one transaction. Returns the result, or the
    claim itself when someone else answered it (or owns it) meanwhile."""
    with transaction.atomic():
        record = _claim_locked(record_id, wait=wait)
        if record is None or record.claim_token != token or record.response_status is not None:
            return record if record is not None else IdempotencyRecord.objects.get(pk=record_id)
        result = perform()
        IdempotencyRecord.objects.filter(pk=record_id).update(response_status=COMMITTED_STATUS, response_body=result)
        return result


def _record_client_error(record_id: int, token: str, error: Exception) -> None:
    """Other client errors (a conflict, a refusal) are final for this body and are replayed. Anything
    else frees the key, a 400 too: input that failed validation never ran, so the client may fix it and
    retry with the same key (as Stripe does), and a 5xx may have been transient."""
    status_code = getattr(error, "status_code", 500)
    owned = IdempotencyRecord.objects.filter(pk=record_id, claim_token=token, response_status__isnull=True)
    if 400 < status_code < 500:
        from web.api.errors import exception_handler

        rendered = exception_handler(error, {})
        if rendered is not None:
            owned.update(response_status=rendered.status_code, response_body=rendered.data)
            return
    owned.delete()


def run_idempotent(
    request, *, endpoint: str, perform: Callable[[], dict], respond: Callable[[dict], Response]
) -> Response:
    """`perform` does the work and returns a small JSON-able result (ids); it runs in a transaction that
    also saves that result under the key. `respond` builds the answer from a result, after the commit,
    for the first request and for every replay alike."""
    key = request.headers.get(HEADER, "").strip()
    if not key:
        with transaction.atomic():
            result = perform()
        return respond(result)
    if len(key) > 255:
        raise ApiError("Idempotency-Key is longer than 255 characters.", field=HEADER, status_code=400)
    if any(ord(char) < 32 or ord(char) == 127 for char in key):
        # NUL cannot be stored by PostgreSQL (a 500); no control character belongs in a key.
        raise ApiError("Idempotency-Key contains a control character.", field=HEADER, status_code=400)
    fingerprint = _fingerprint(request.data)
    token = uuid.uuid4().hex
    wait = settings.IDEMPOTENCY_LOCK_WAIT_SECONDS
    claim_wait: float | None = None  # the claim is this request's own, just made
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(
                user=request.user, key=key, endpoint=endpoint, request_fingerprint=fingerprint, claim_token=token
            )
    except IntegrityError:
        claim_wait = wait
        record = IdempotencyRecord.objects.get(user=request.user, key=key, endpoint=endpoint)
        if record.request_fingerprint != fingerprint:
            raise ApiError(
                "This Idempotency-Key was used with a different request body.",
                field=HEADER,
                code="idempotency_key_reused",
                status_code=422,
            ) from None
        if record.response_status is None:
            record = _take_over_or_wait(record.pk, token, wait=wait)
        if record.response_status is not None:
            return _replay(record, respond)

    try:
        outcome = _perform_under_claim(record.pk, token, perform, wait=claim_wait)
    except Exception as error:
        _record_client_error(record.pk, token, error)
        raise
    if isinstance(outcome, IdempotencyRecord):
        if outcome.response_status is None:
            raise _in_use()
        return _replay(outcome, respond)
    response = respond(outcome)
    IdempotencyRecord.objects.filter(pk=record.pk, claim_token=token).update(
        response_status=response.status_code, response_body=response.data
    )
    return response


def _take_over_or_wait(record_id: int, token: str, *, wait: float) -> IdempotencyRecord:
    """An unanswered claim: wait for its holder's transaction, then either it is answered (returned as
    is), or its lease ran out and it becomes ours (returned unanswered, with our token), or 409."""
    lease = timedelta(seconds=settings.IDEMPOTENCY_LEASE_SECONDS)
    with transaction.atomic():
        record = _claim_locked(record_id, wait=wait)
        if record is None:
            raise _in_use()
        if record.response_status is not None:
            return record
        if record.claimed_at > timezone.now() - lease:
            raise _in_use()
        record.claim_token = token
        record.claimed_at = timezone.now()
        record.save(update_fields=["claim_token", "claimed_at"])
        return record
