"""A listener's payouts: one row per payout (period, amount, status, Stripe transfer)."""

from rest_framework import generics

from payouts.api.serializers import PayoutSummarySerializer
from payouts.models import Payout
from payouts.selectors import payout_list_for_user
from web.api.permissions import IsListener


class PayoutTransferListView(generics.ListAPIView):
    permission_classes = [IsListener]
    serializer_class = PayoutSummarySerializer
    queryset = Payout.objects.none()  # the schema generator's model; requests use get_queryset

    def get_queryset(self):
        return payout_list_for_user(user=self.request.user)
