from django.urls import path
from rest_framework.routers import SimpleRouter

from subscriptions.api.views import PlanListView, SubscriptionViewSet

router = SimpleRouter()
router.register("subscriptions", SubscriptionViewSet, basename="subscription")

urlpatterns = [
    path("subscription_plans/", PlanListView.as_view(), name="subscription-plan-list"),
    *router.urls,
]
