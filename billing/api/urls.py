from django.urls import path

from billing.api.views import PaymentListView, StripeConfigView
from billing.api.webhook import StripeWebhookView

urlpatterns = [
    path("stripe/config/", StripeConfigView.as_view(), name="stripe-config"),
    path("payments/", PaymentListView.as_view(), name="payment-list"),
    path("stripe/webhook/", StripeWebhookView.as_view(), name="stripe-webhook"),
]
