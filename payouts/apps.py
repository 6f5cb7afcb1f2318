from django.apps import AppConfig


class PayoutsConfig(AppConfig):
    name = "payouts"

    def ready(self) -> None:
        # Billing changes earnings, Connect accounts and payouts only through these services (billing.owners).
        from billing import owners
        from payouts import services

        owners.register(payouts=services)
