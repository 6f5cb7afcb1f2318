from django.db.models import QuerySet

from billing.models import Payment


def payment_list_for_user(*, user) -> QuerySet[Payment]:
    """A talker's own payments; a listener sees the payments for their sessions."""
    if user.is_listener:
        return Payment.objects.filter(booking__listener=user).select_related("booking").order_by("-created_at", "-id")
    return Payment.objects.filter(talker=user).select_related("booking").order_by("-created_at", "-id")
