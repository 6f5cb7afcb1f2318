"""`Idempotency-Key` for unsafe API requests: a retried request gets the first answer, not a second effect.

The key is claimed in its own committed row before the work runs, so two concurrent requests with
one key cannot both run: the second sees the claim and is told to retry (409). A different body
under a used key is refused (422), as Stripe does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from django.db import IntegrityError, transaction
from rest_framework.response import Response

from web.api.errors import ApiError
from web.models import IdempotencyRecord

HEADER = "Idempotency-Key"


def _fingerprint(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def run_idempotent(
    request, *, endpoint: str, handler: Callable[[], Response], replay: Callable[[dict], Response] | None = None
) -> Response:
    key = request.headers.get(HEADER, "").strip()
    if not key:
        return handler()
    if len(key) > 255:
        raise ApiError("Idempotency-Key is longer than 255 characters.", field=HEADER, status_code=400)
    fingerprint = _fingerprint(request.data)
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(
                user=request.user, key=key, endpoint=endpoint, request_fingerprint=fingerprint
            )
    except IntegrityError:
        record = IdempotencyRecord.objects.get(user=request.user, key=key, endpoint=endpoint)
        if record.request_fingerprint != fingerprint:
            raise ApiError(
                "This Idempotency-Key was used with a different request body.",
                field=HEADER,
                code="idempotency_key_reused",
                status_code=422,
            ) from None
        if record.response_status is None:
            raise ApiError(
                "A request with this Idempotency-Key is still being processed; retry shortly.",
                field=HEADER,
                code="idempotency_key_in_use",
                status_code=409,
            ) from None
        if replay is not None and record.response_status < 400:
            response = replay(record.response_body)
        else:
            response = Response(record.response_body, status=record.response_status)
        response["Idempotent-Replayed"] = "true"
        return response

    try:
        response = handler()
    except Exception as error:
        # Other client errors (a conflict, a refusal) are final for this body and are replayed. Anything
        # else frees the key, a 400 too: input that failed validation never ran, so the client may fix
        # it and retry with the same key (as Stripe does), and a 5xx may have been transient.
        status_code = getattr(error, "status_code", 500)
        if 400 < status_code < 500:
            from web.api.errors import exception_handler

            rendered = exception_handler(error, {})
            if rendered is not None:
                IdempotencyRecord.objects.filter(pk=record.pk).update(
                    response_status=rendered.status_code, response_body=rendered.data
                )
                raise
        IdempotencyRecord.objects.filter(pk=record.pk).delete()
        raise
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        response_status=response.status_code, response_body=response.data
    )
    return response
