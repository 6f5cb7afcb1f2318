"""The webhook endpoint as Stripe sees it: signed deliveries are stored once and handed to a worker;
anything not signed by Stripe is refused with 400 and leaves only a capped audit record."""

import json
import time

import pytest
from celery.signals import before_task_publish
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from billing.models import WebhookEvent, WebhookRejection
from billing.tests.stripe_events import payment_intent_object, sign, signed_body, stripe_event
from billing.webhooks import intake
from web.testing import WEBHOOK_PATH
from web.tests.factories import TalkerFactory

pytestmark = pytest.mark.django_db

SECRET = "whsec_talkpay_test_secret"


@pytest.fixture
def published():
    """The webhook tasks published to the broker (the real broker: this only listens)."""
    sent: list = []

    def record(sender=None, body=None, **kwargs):
        if sender == "billing.webhook_process":
            sent.append(body[0][0])

    before_task_publish.connect(record, weak=False)
    yield sent
    before_task_publish.disconnect(record)


def _post(client: APIClient, body: bytes, signature: str | None):
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature is not None else {}
    return client.post(WEBHOOK_PATH, data=body, content_type="application/json; charset=utf-8", **headers)


def _event() -> dict:
    return stripe_event("payment_intent.succeeded", payment_intent_object(status="succeeded"))


def test_a_signed_delivery_is_stored_once_with_its_raw_body_and_enqueued(
    api_client, published, django_capture_on_commit_callbacks
):
    event = _event()
    body, signature = signed_body(event)

    with django_capture_on_commit_callbacks(execute=True):
        response = _post(api_client, body, signature)

    assert response.status_code == 200
    stored = WebhookEvent.objects.get(stripe_event_id=event["id"])
    assert stored.raw_body.encode() == body
    assert stored.payload == event
    assert (stored.type, stored.status, stored.deliveries) == ("payment_intent.succeeded", "pending", 1)
    assert stored.headers["Stripe-Signature"] == signature
    assert published == [stored.pk]


def test_a_duplicate_delivery_is_acknowledged_and_enqueued_again_only_while_unprocessed(
    api_client, published, django_capture_on_commit_callbacks
):
    event = _event()
    body, signature = signed_body(event)
    with django_capture_on_commit_callbacks(execute=True):
        _post(api_client, body, signature)
        second = _post(api_client, body, signature)
    WebhookEvent.objects.filter(stripe_event_id=event["id"]).update(status=WebhookEvent.Status.PROCESSED)
    with django_capture_on_commit_callbacks(execute=True):
        third = _post(api_client, body, sign(body))

    assert (second.status_code, third.status_code) == (200, 200)
    stored = WebhookEvent.objects.get(stripe_event_id=event["id"])
    assert stored.deliveries == 3
    assert published == [stored.pk, stored.pk]  # the first two only: the third came after processing


def test_a_type_no_handler_takes_is_stored_as_ignored_without_a_task_and_a_replay_still_runs_it(
    api_client, published, django_capture_on_commit_callbacks
):
    from billing.webhooks.processing import webhook_event_replay

    event = stripe_event("customer.created", {"id": "cus_intake_unhandled", "object": "customer"})
    body, signature = signed_body(event)

    with django_capture_on_commit_callbacks(execute=True):
        first = _post(api_client, body, signature)
        again = _post(api_client, body, sign(body))

    assert (first.status_code, again.status_code) == (200, 200)
    stored = WebhookEvent.objects.get(stripe_event_id=event["id"])
    assert (stored.status, stored.deliveries, stored.attempts) == ("ignored", 2, 0)
    assert stored.processed_at is not None and stored.payload == event
    assert published == []
    assert webhook_event_replay(stripe_event_id=event["id"]) == "ignored"
    assert WebhookEvent.objects.get(pk=stored.pk).attempts == 1


def _bad_deliveries() -> dict:
    body = json.dumps(_event(), indent=2).encode()
    now = int(time.time())
    good = sign(body, secret=SECRET, timestamp=now)
    digest = good.split("v1=")[1]
    return {
        "missing header": (body, None),
        "empty header": (body, ""),
        "garbage header": (body, "not-a-signature"),
        "no timestamp": (body, f"v1={digest}"),
        "no v1 signature": (body, f"t={now},v0={digest}"),
        "wrong secret": (body, sign(body, secret="whsec_someone_else", timestamp=now)),
        "tampered body": (body.replace(b'"succeeded"', b'"canceled"', 1), good),
        "body re-serialized": (json.dumps(json.loads(body)).encode(), good),
        "timestamp changed": (body, f"t={now + 1},v1={digest}"),
        "stale by more than 300 s": (body, sign(body, secret=SECRET, timestamp=now - 301)),
        "not UTF-8": (b"\xff\xfe" + body, sign(body, secret=SECRET, timestamp=now)),
    }


@pytest.mark.parametrize("variant", sorted(_bad_deliveries()))
def test_every_bad_signature_is_refused_and_nothing_is_processed(variant, api_client, published, settings):
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    body, signature = _bad_deliveries()[variant]

    response = _post(api_client, body, signature)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_signature"
    assert not WebhookEvent.objects.exists()
    assert published == []
    assert WebhookRejection.objects.count() == 1


def test_during_a_secret_rotation_the_old_secret_and_several_v1_signatures_are_accepted(api_client, settings):
    settings.STRIPE_WEBHOOK_SECRET = "whsec_new"
    settings.STRIPE_WEBHOOK_SECRETS_OLD = ["whsec_old"]
    old_signed = _event()
    body, signature = signed_body(old_signed, secret="whsec_old")
    both = _event()
    both_body = json.dumps(both).encode()
    now = int(time.time())
    digests = [sign(both_body, secret=secret, timestamp=now).split("v1=")[1] for secret in ("whsec_x", "whsec_new")]

    first = _post(api_client, body, signature)
    second = _post(api_client, both_body, f"t={now},v1={digests[0]},v1={digests[1]}")

    assert (first.status_code, second.status_code) == (200, 200)
    assert WebhookEvent.objects.filter(stripe_event_id__in=[old_signed["id"], both["id"]]).count() == 2


def test_the_connect_endpoints_secret_and_its_old_ones_are_accepted_at_the_same_url(api_client, settings):
    # Stripe sends connected accounts' events only to the Connect endpoint, signed with its own secret.
    settings.STRIPE_WEBHOOK_SECRET = "whsec_platform"
    settings.STRIPE_CONNECT_WEBHOOK_SECRET = "whsec_connect_new"
    settings.STRIPE_CONNECT_WEBHOOK_SECRETS_OLD = ["whsec_connect_old"]
    current, rotated, stranger = _event(), _event(), _event()

    responses = [
        _post(api_client, *signed_body(current, secret="whsec_connect_new")),
        _post(api_client, *signed_body(rotated, secret="whsec_connect_old")),
        _post(api_client, *signed_body(stranger, secret="whsec_someone_else")),
    ]

    assert [response.status_code for response in responses] == [200, 200, 400]
    assert set(WebhookEvent.objects.values_list("stripe_event_id", flat=True)) == {current["id"], rotated["id"]}


def test_the_rejection_audit_is_truncated_and_capped(api_client, monkeypatch):
    monkeypatch.setattr(intake, "REJECTIONS_KEPT", 5)
    monkeypatch.setattr(intake, "_REJECTION_PRUNE_EVERY", 1)
    huge_body = b'{"id": "evt_x", "pad": "' + b"A" * 200_000 + b'"}'

    for _ in range(12):
        assert _post(api_client, huge_body, "t=1,v1=" + "f" * 20_000).status_code == 400

    kept = list(WebhookRejection.objects.all())
    assert len(kept) <= 5
    assert all(len(r.body_excerpt) <= 512 and len(r.signature_header) <= 512 for r in kept)


def test_the_endpoint_needs_no_user_auth_and_no_csrf_token():
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(TalkerFactory())  # a browser session must not make CSRF apply
    body, signature = signed_body(_event())

    assert _post(client, body, signature).status_code == 200


def test_the_endpoint_has_its_own_throttle_that_does_not_touch_the_user_api(api_client, monkeypatch):
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"stripe_webhook": "2/min"})
    codes = [_post(api_client, *signed_body(_event())).status_code for _ in range(3)]
    packages = api_client.get("/api/payment/packages/")

    assert codes == [200, 200, 429]
    assert packages.status_code == 200


def test_a_signed_body_that_is_not_an_event_is_refused_without_storing(api_client):
    body = b'{"hello": "world"}'

    response = _post(api_client, body, sign(body))

    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()
