"""The web app at `/`: one HTML shell whose plain JavaScript (web/static/talkpay/app.js) uses the REST
API as its only backend and keeps the JWT in memory. Stripe.js comes from the emulator when one is
configured (its `/v3/` stand-in), else from js.stripe.com, so the same page runs offline and live."""

from django.conf import settings
from django.views.generic import TemplateView

STRIPE_JS = "https://js.stripe.com/v3"


class AppView(TemplateView):
    template_name = "talkpay/app.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        base = settings.STRIPE_API_BASE.rstrip("/")
        context["stripe_js_url"] = f"{base}/v3/" if base else STRIPE_JS
        return context
