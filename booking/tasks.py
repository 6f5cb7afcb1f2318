from celery import shared_task

from booking import services


@shared_task(name="booking.bookings_expire_unpaid", acks_late=True)
def bookings_expire_unpaid_task() -> int:
    return services.bookings_expire_unpaid()
