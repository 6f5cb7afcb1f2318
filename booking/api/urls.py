from django.urls import path
from rest_framework.routers import SimpleRouter

from booking.api.listeners import BookingCancelQuoteView, ListenerListView
from booking.api.views import BookingViewSet, PackageListView

router = SimpleRouter()
router.register("bookings", BookingViewSet, basename="booking")

urlpatterns = [
    path("packages/", PackageListView.as_view(), name="package-list"),
    path("listeners/", ListenerListView.as_view(), name="listener-list"),
    path("bookings/<int:pk>/cancel_quote/", BookingCancelQuoteView.as_view(), name="booking-cancel-quote"),
    *router.urls,
]
