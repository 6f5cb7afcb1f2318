"""Item 8: a correctly signed delivery whose event is malformed is a 400 naming the problem, never a 500,
and nothing is stored (Stripe sees the 400 in its dashboard)."""

import json

import pytest

from billing.models import WebhookEvent, WebhookRejection
from billing.tests.stripe_events import payment_intent_object, sign, stripe_event
from web.testing import WEBHOOK_PATH

pytestmark = pytest.mark.django_db


def _deliver(client, body: bytes, signature: str | None = None):
    return client.post(
        WEBHOOK_PATH, data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=signature or sign(body)
    )


def _event(**fields) -> dict:
    return {**stripe_event("payment_intent.succeeded", payment_intent_object(status="succeeded")), **fields}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"created": "abc"}, "created"),
        ({"created": 10**30}, "created"),
        ({"created": -1}, "created"),
        ({"created": True}, "created"),
        ({"account": 123}, "account"),
        ({"account": {"id": "acct_1"}}, "account"),
        ({"api_version": ["2024-06-20"]}, "api_version"),
    ],
)
def test_a_signed_event_with_a_malformed_field_is_a_400_naming_it(api_client, fields, field):
    response = _deliver(api_client, json.dumps(_event(**fields)).encode())

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not WebhookEvent.objects.exists()


def test_a_signed_event_carrying_a_nul_character_is_a_400(api_client):
    event = _event()
    event["data"]["object"]["description"] = "evil\x00"

    response = _deliver(api_client, json.dumps(event).encode())

    assert response.status_code == 400
    assert "NUL" in response.json()["error"]["message"]
    assert not WebhookEvent.objects.exists()


def test_an_unsigned_body_with_a_nul_byte_is_recorded_as_a_rejection(api_client):
    response = _deliver(api_client, b'{"id": "evt_1\x00"}', signature="t=1,v1=bad")

    assert response.status_code == 400
    assert "\x00" not in WebhookRejection.objects.get().body_excerpt
