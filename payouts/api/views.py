from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import money
from payouts.api.serializers import EarningSerializer, PendingEarningsSerializer
from payouts.selectors import earning_list_for_listener, listener_earnings_summary
from web.api.permissions import IsListener


class PayoutListView(generics.ListAPIView):
    """A listener's earnings, newest first, paginated."""

    permission_classes = [IsListener]
    serializer_class = EarningSerializer

    def get_queryset(self):
        return earning_list_for_listener(listener_id=self.request.user.pk)


class PendingEarningsView(APIView):
    """What the platform owes the listener now, and all they earned net of refunds, from the ledger."""

    permission_classes = [IsListener]

    @extend_schema(responses=PendingEarningsSerializer)
    def get(self, request):
        summary = listener_earnings_summary(listener_id=request.user.pk)
        return Response({name: money.format_amount(cents) for name, cents in summary.items()})
