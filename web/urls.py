from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from web.api.auth import LogoutView, MeView, PasswordChangeView, RegisterView, TokenObtainView, TokenRefreshView
from web.api.health import HealthView, ReadyView
from web.frontend import AppView
from web.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/health/", HealthView.as_view(), name="health"),
    path("api/health/ready/", ReadyView.as_view(), name="health-ready"),
    path("api/metrics/", metrics_view, name="metrics"),
    path("api/auth/token/", TokenObtainView.as_view(), name="token_obtain_pair"),
    path("api/auth/token/refresh/", TokenRefreshView.as_view(), name="token_refresh"),
    path("api/auth/logout/", LogoutView.as_view(), name="logout"),
    path("api/auth/password/", PasswordChangeView.as_view(), name="password_change"),
    path("api/auth/register/", RegisterView.as_view(), name="register"),
    path("api/auth/me/", MeView.as_view(), name="me"),
    path("api/payment/", include("booking.api.urls")),
    path("api/payment/", include("billing.api.urls")),
    path("api/payment/", include("payouts.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema", template_name="web/redoc.html"), name="redoc"),
    # The web app: one shell; its script routes by hash, and by path for Connect's return and refresh links.
    path("", AppView.as_view(), name="app"),
    path("connect/return", AppView.as_view(), name="connect-return"),
    path("connect/refresh", AppView.as_view(), name="connect-refresh"),
]

# JSON answers (with the request id) for what no view answered: web.middleware.
handler400 = "web.middleware.bad_request"
handler403 = "web.middleware.permission_denied"
handler404 = "web.middleware.page_not_found"
handler500 = "web.middleware.server_error"
