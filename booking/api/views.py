from django.conf import settings
from django.http import Http404
from django.urls import reverse
from django_filters import rest_framework as filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response

from billing.intent_ready import payment_intent_wait
from billing.models import Payment
from booking import services
from booking.api.serializers import (
    BookingCancelInputSerializer,
    BookingCancelResponseSerializer,
    BookingCreateInputSerializer,
    BookingCreateResponseSerializer,
    BookingDetailSerializer,
    PackageSerializer,
)
from booking.models import Booking
from booking.selectors import booking_get_for_user, booking_list_for_user, package_list_active
from web.api.permissions import IsTalker
from web.api.schema import error_responses
from web.api.throttling import BookingCreateThrottle, UserThrottle
from web.idempotency import HEADER as IDEMPOTENCY_HEADER
from web.idempotency import run_idempotent


class PackageListView(generics.ListAPIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    serializer_class = PackageSerializer
    pagination_class = None

    def get_queryset(self):
        return package_list_active()


class BookingFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=Booking.Status.choices)

    class Meta:
        model = Booking
        fields = ("status",)


class BookingViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = BookingDetailSerializer
    permission_classes = [IsAuthenticated]
    filterset_class = BookingFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Booking.objects.none()
        return booking_list_for_user(user=self.request.user)

    def get_object(self) -> Booking:
        # 404 (not 403) for someone else's booking, as for one that does not exist: not revealed.
        pk = str(self.kwargs[self.lookup_url_kwarg or self.lookup_field])
        booking = None
        if pk.isascii() and pk.isdigit() and 0 < int(pk) < 2**63:
            booking = booking_get_for_user(booking_id=int(pk), user=self.request.user)
        if booking is None:
            raise Http404
        self.check_object_permissions(self.request, booking)
        return booking

    def _created_response(self, request, booking_id: int) -> Response:
        booking = Booking.objects.select_related("payment").get(pk=booking_id)
        payment = payment_intent_wait(payment_id=booking.payment.pk, timeout=settings.BOOKING_PAYMENT_WAIT_SECONDS)
        booking.payment = payment
        body = BookingDetailSerializer(booking, context={"request": request}).data
        payment_data = body.pop("payment")
        payload = {"booking": body, "payment": payment_data}
        if payment.status == Payment.Status.AWAITING_INTENT:
            payload["poll_url"] = reverse("booking-detail", args=[booking.pk])
            return Response(payload, status=status.HTTP_202_ACCEPTED)
        return Response(payload, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=BookingCreateInputSerializer,
        responses={
            201: BookingCreateResponseSerializer,
            202: BookingCreateResponseSerializer,
            **error_responses(409, 422),
        },
        parameters=[OpenApiParameter(IDEMPOTENCY_HEADER, str, OpenApiParameter.HEADER, required=False)],
    )
    @action(
        detail=False,
        methods=["post"],
        permission_classes=[IsTalker],
        throttle_classes=[UserThrottle, BookingCreateThrottle],
    )
    def create_booking(self, request):
        def perform() -> dict:
            data = BookingCreateInputSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            booking = services.booking_create(talker=request.user, **data.validated_data)
            return {"booking": {"id": booking.pk}}

        # The booking and its Idempotency-Key answer commit together; the answer (with the bounded wait
        # for the PaymentIntent) is built from the committed booking, for the first request and retries.
        return run_idempotent(
            request,
            endpoint="bookings.create_booking",
            perform=perform,
            respond=lambda result: self._created_response(request, result["booking"]["id"]),
        )

    @extend_schema(request=None, responses={200: BookingDetailSerializer, **error_responses(409)})
    @action(detail=True, methods=["post"])
    def start_session(self, request, pk=None):
        booking = services.booking_start(booking_id=self._booking_id(pk), user=request.user)
        return Response(BookingDetailSerializer(booking, context={"request": request}).data)

    @extend_schema(request=None, responses={200: BookingDetailSerializer, **error_responses(409)})
    @action(detail=True, methods=["post"])
    def complete_session(self, request, pk=None):
        booking = services.booking_complete(booking_id=self._booking_id(pk), user=request.user)
        return Response(BookingDetailSerializer(booking, context={"request": request}).data)

    @extend_schema(
        request=BookingCancelInputSerializer, responses={200: BookingCancelResponseSerializer, **error_responses(409)}
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        data = BookingCancelInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        cancellation = services.booking_cancel(
            booking_id=self._booking_id(pk), user=request.user, reason=data.validated_data["reason"]
        )
        return Response(BookingCancelResponseSerializer(cancellation, context={"request": request}).data)

    def _booking_id(self, pk) -> int:
        # 404 (not 403) for someone else's booking: its existence is not revealed.
        return self.get_object().pk
