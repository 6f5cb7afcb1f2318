"""`POST /api/payment/stripe/webhook/`: Stripe's deliveries. No user auth and no CSRF (the signature
is the authentication), its own throttle scope, and nothing slow: verify, store, enqueue, answer."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.webhooks.intake import SIGNATURE_HEADER, webhook_receive
from web.api.client_ip import client_ip
from web.api.schema import error_responses
from web.api.throttling import ScopedWindowThrottle


def _request_headers(meta: dict) -> dict[str, str]:
    headers = {key[5:].replace("_", "-").title(): value for key, value in meta.items() if key.startswith("HTTP_")}
    if meta.get("CONTENT_TYPE"):
        headers["Content-Type"] = meta["CONTENT_TYPE"]
    return headers


class StripeWebhookView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    # A count per window: one Redis round trip per delivery (the request log of ScopedThrottle is two,
    # and grows with the rate).
    throttle_classes = [ScopedWindowThrottle]
    throttle_scope = "stripe_webhook"

    @extend_schema(
        request={"application/json": {"type": "object", "description": "A Stripe event, exactly as Stripe sent it."}},
        responses={
            200: inline_serializer(
                "WebhookReceipt", {"received": serializers.BooleanField(), "duplicate": serializers.BooleanField()}
            ),
            **error_responses(400),
        },
        parameters=[
            OpenApiParameter(
                SIGNATURE_HEADER,
                str,
                OpenApiParameter.HEADER,
                required=True,
                description="Stripe's signature of the raw body (t=...,v1=...); a bad one is a 400.",
            )
        ],
        auth=[],
    )
    def post(self, request):
        meta = request.META
        receipt = webhook_receive(
            body=request.body,
            signature_header=meta.get("HTTP_STRIPE_SIGNATURE"),
            headers=_request_headers(meta),
            remote_addr=client_ip(request),
        )
        return Response({"received": True, "duplicate": not receipt.created})
