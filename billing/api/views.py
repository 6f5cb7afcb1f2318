from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.api.serializers import PaymentSerializer
from billing.models import Payment
from billing.selectors import payment_list_for_user


class StripeConfigView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(
        responses=inline_serializer(
            "StripeConfig",
            {"publishable_key": serializers.CharField(), "emulator_url": serializers.CharField(required=False)},
        )
    )
    def get(self, request):
        body = {"publishable_key": settings.STRIPE_PUBLISHABLE_KEY}
        if settings.STRIPE_API_BASE:
            body["emulator_url"] = settings.STRIPE_API_BASE
        return Response(body)


class PaymentListView(generics.ListAPIView):
    permission_classes = [IsAuthenticated]
    serializer_class = PaymentSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Payment.objects.none()
        return payment_list_for_user(user=self.request.user)
