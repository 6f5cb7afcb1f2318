"""The baseline for bench/webhook_bench.py: the least a webhook endpoint and its worker can do.

The view verifies the HMAC, inserts one row and enqueues on commit; the task takes two row locks,
reads the PaymentIntent from Stripe as Talkpay's handler does (one retrieve, latest charge expanded,
under the locks: the event is a trigger, the intent the truth) and updates both rows. Served by
gunicorn as `webhook_bare:application` (with `bench/` on the Python path) and loaded by the
benchmark's Celery worker with `--include webhook_bare`. Not part of the app.
"""

import hashlib
import hmac
import json
import os
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "web.settings")

import django

django.setup()

from celery import shared_task  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.db import transaction  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402

from billing import stripe_gateway  # noqa: E402
from billing.models import Payment, WebhookEvent  # noqa: E402


@csrf_exempt
def bare_webhook(request):
    body = request.body
    fields = dict(
        part.split("=", 1) for part in request.META.get("HTTP_STRIPE_SIGNATURE", "").split(",") if "=" in part
    )
    timestamp = fields.get("t", "0")
    expected = hmac.new(settings.STRIPE_WEBHOOK_SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest(), fields.get("v1", "")) or abs(time.time() - int(timestamp)) > 300:
        return HttpResponse(status=400)
    event = json.loads(body)
    with transaction.atomic():
        row = WebhookEvent.objects.create(
            stripe_event_id=event["id"], type=event["type"], payload=event, raw_body=body.decode()
        )
        transaction.on_commit(lambda: bare_process.apply_async(args=[row.pk, event["data"]["object"]["id"]]))
    return HttpResponse("ok")


@shared_task(name="billing.webhook_bare_process", acks_late=True, ignore_result=True)
def bare_process(webhook_event_id: int, payment_intent_id: str) -> None:
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().get(pk=webhook_event_id)
        payment = Payment.objects.select_for_update().filter(stripe_payment_intent_id=payment_intent_id).first()
        if payment is not None and stripe_gateway.payment_intent_retrieve(payment_intent_id, expand=("latest_charge",)):
            Payment.objects.filter(pk=payment.pk).update(status=Payment.Status.PROCESSING)
        WebhookEvent.objects.filter(pk=event.pk).update(status=WebhookEvent.Status.PROCESSED)


urlpatterns = [path("hook/", bare_webhook)]
settings.ROOT_URLCONF = __name__
application = get_wsgi_application()
