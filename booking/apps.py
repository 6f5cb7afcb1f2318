from django.apps import AppConfig


class BookingConfig(AppConfig):
    name = "booking"

    def ready(self) -> None:
        # Billing changes bookings only through these services (see billing.owners).
        from billing import owners
        from booking import services

        owners.register(bookings=services)
