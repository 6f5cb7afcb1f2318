"""Read-only views the web app needs to book: the listeners taking bookings with their busy times,
and what cancelling a booking would refund before the participant confirms it."""

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from booking.selectors import booking_cancel_quote, listener_list_taking_bookings
from web.api.fields import CentsField


class BusySlotSerializer(serializers.Serializer):
    starts_at = serializers.DateTimeField(source="scheduled_at")
    ends_at = serializers.DateTimeField()


class ListenerSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    first_name = serializers.CharField()
    last_name = serializers.CharField()
    busy_slots = BusySlotSerializer(source="busy_bookings", many=True)


class ListenerListView(generics.ListAPIView):
    """Listeners who take bookings, with the times already booked from now on (pending, confirmed or
    in progress), so a talker can pick a free slot; creating the booking still checks the slot."""

    serializer_class = ListenerSerializer

    def get_queryset(self):
        return listener_list_taking_bookings(busy_from=timezone.now())


class CancelQuoteSerializer(serializers.Serializer):
    amount = CentsField()
    policy = serializers.CharField()


class BookingCancelQuoteView(APIView):
    """What `POST bookings/{id}/cancel/` would refund if sent now (409 when it can no longer be cancelled)."""

    @extend_schema(responses=CancelQuoteSerializer)
    def get(self, request, pk: int):
        amount, policy = booking_cancel_quote(booking_id=pk, user=request.user, now=timezone.now())
        return Response(CancelQuoteSerializer({"amount": amount, "policy": policy}).data)
