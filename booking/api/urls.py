from django.urls import path
from rest_framework.routers import SimpleRouter

from booking.api.views import BookingViewSet, PackageListView

router = SimpleRouter()
router.register("bookings", BookingViewSet, basename="booking")

urlpatterns = [
    path("packages/", PackageListView.as_view(), name="package-list"),
    *router.urls,
]
