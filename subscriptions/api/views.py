from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response

from subscriptions import services
from subscriptions.api.serializers import (
    PlanSerializer,
    SubscriptionCancelInputSerializer,
    SubscriptionChangeInputSerializer,
    SubscriptionCreateInputSerializer,
    SubscriptionResumeInputSerializer,
    SubscriptionSerializer,
)
from subscriptions.models import Subscription
from subscriptions.selectors import plan_list_active, subscription_list_for_user
from web.api.permissions import IsTalker
from web.api.schema import error_responses
from web.api.throttling import BookingCreateThrottle, UserThrottle
from web.idempotency import HEADER as IDEMPOTENCY_HEADER
from web.idempotency import run_idempotent


class PlanListView(generics.ListAPIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    serializer_class = PlanSerializer
    pagination_class = None

    def get_queryset(self):
        return plan_list_active()


class SubscriptionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = SubscriptionSerializer
    permission_classes = [IsAuthenticated]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Subscription.objects.none()
        return subscription_list_for_user(user=self.request.user)

    def get_permissions(self):
        if self.action == "create":
            return [IsTalker()]
        return super().get_permissions()

    def get_throttles(self):
        if self.action == "create":
            return [UserThrottle(), BookingCreateThrottle()]
        return super().get_throttles()

    def _created_response(self, request, subscription_id: int) -> Response:
        sub = services.subscription_wait_created(
            subscription_id=subscription_id, timeout=settings.BOOKING_PAYMENT_WAIT_SECONDS
        )
        body = SubscriptionSerializer(sub, context={"request": request}).data
        payload = {"subscription": body, "payment": body["payment"]}
        if sub.status == Subscription.Status.CREATING:
            payload["poll_url"] = reverse("subscription-detail", args=[sub.pk])
            return Response(payload, status=status.HTTP_202_ACCEPTED)
        return Response(payload, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=SubscriptionCreateInputSerializer,
        responses={201: SubscriptionSerializer, 202: SubscriptionSerializer, **error_responses(409, 422)},
        parameters=[OpenApiParameter(IDEMPOTENCY_HEADER, str, OpenApiParameter.HEADER, required=False)],
    )
    def create(self, request):
        def perform() -> dict:
            data = SubscriptionCreateInputSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            sub = services.subscription_create(talker=request.user, **data.validated_data)
            return {"subscription": {"id": sub.pk}}

        # The subscription and its Idempotency-Key answer commit together (web.idempotency).
        return run_idempotent(
            request,
            endpoint="subscriptions.create",
            perform=perform,
            respond=lambda result: self._created_response(request, result["subscription"]["id"]),
        )

    def _respond(self, request, sub: Subscription) -> Response:
        return Response(SubscriptionSerializer(sub, context={"request": request}).data)

    @extend_schema(
        request=SubscriptionCancelInputSerializer, responses={200: SubscriptionSerializer, **error_responses(409)}
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        data = SubscriptionCancelInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        sub = services.subscription_cancel(
            subscription_id=self.get_object().pk, user=request.user, at_period_end=data.validated_data["at_period_end"]
        )
        return self._respond(request, sub)

    @extend_schema(request=None, responses={200: SubscriptionSerializer, **error_responses(409)})
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return self._respond(
            request, services.subscription_pause(subscription_id=self.get_object().pk, user=request.user)
        )

    @extend_schema(
        request=SubscriptionResumeInputSerializer, responses={200: SubscriptionSerializer, **error_responses(409)}
    )
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        data = SubscriptionResumeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        sub = services.subscription_resume(
            subscription_id=self.get_object().pk, user=request.user, **data.validated_data
        )
        return self._respond(request, sub)

    @extend_schema(
        request=SubscriptionChangeInputSerializer, responses={200: SubscriptionSerializer, **error_responses(409)}
    )
    @action(detail=True, methods=["post"])
    def change(self, request, pk=None):
        data = SubscriptionChangeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        sub = services.subscription_change(
            subscription_id=self.get_object().pk, user=request.user, **data.validated_data
        )
        return self._respond(request, sub)
