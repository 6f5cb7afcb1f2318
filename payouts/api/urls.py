from django.urls import path

from payouts.api.connect import ConnectOnboardingView, ConnectStatusView
from payouts.api.transfers import PayoutTransferListView
from payouts.api.views import PayoutListView, PendingEarningsView

urlpatterns = [
    path("payouts/", PayoutListView.as_view(), name="payout-list"),
    path("payouts/pending_earnings/", PendingEarningsView.as_view(), name="payout-pending-earnings"),
    path("payouts/transfers/", PayoutTransferListView.as_view(), name="payout-transfer-list"),
    path("connect/onboarding/", ConnectOnboardingView.as_view(), name="connect-onboarding"),
    path("connect/status/", ConnectStatusView.as_view(), name="connect-status"),
]
