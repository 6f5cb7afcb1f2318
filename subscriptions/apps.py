from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"

    def ready(self) -> None:
        # Billing's webhook handlers reach subscriptions only through these services (see billing.owners).
        from billing import owners
        from subscriptions import services

        owners.register(subscriptions=services)
