from django.contrib import admin, messages

from billing import money
from booking import services
from booking.models import Booking, BookingPackage
from common.errors import DomainError


@admin.register(BookingPackage)
class BookingPackageAdmin(admin.ModelAdmin):
    list_display = ("name", "duration_minutes", "price", "app_fee_percentage", "is_active")
    list_editable = ("price", "app_fee_percentage", "is_active")
    list_filter = ("is_active",)


@admin.register(Booking)
class BookingAdmin(admin.ModelAdmin):
    """Bookings change only through `booking.services` (its lifecycle, the payment, the refund that
    follow): status, parties, schedule and amounts are read-only here; only the notes are editable."""

    list_display = ("id", "talker", "listener", "package", "status", "scheduled_at", "total_display", "created_at")
    list_filter = ("status",)
    search_fields = ("id", "talker__username", "listener__username", "payment__stripe_payment_intent_id")
    date_hierarchy = "scheduled_at"
    list_select_related = ("talker", "listener", "package")
    actions = ["cancel_with_full_refund"]

    @admin.action(description="Cancel with a full refund (on the listener's behalf)")
    def cancel_with_full_refund(self, request, queryset):
        # The same service as the API: a listener's cancellation refunds everything, by the policy.
        for booking in queryset.select_related("listener")[:100]:
            try:
                cancellation = services.booking_cancel(
                    booking_id=booking.pk, user=booking.listener, reason=f"Cancelled by operator {request.user}"
                )
            except DomainError as error:
                self.message_user(request, f"Booking #{booking.pk}: {error}", messages.ERROR)
                continue
            refund = cancellation.refund
            refunded = f", {money.format_amount(refund.amount)} refunded" if refund is not None else ""
            self.message_user(request, f"Booking #{booking.pk} cancelled{refunded}.", messages.SUCCESS)

    @admin.display(description="total", ordering="total_amount")
    def total_display(self, booking: Booking) -> str:
        return money.display(booking.total_amount, booking.currency)

    @admin.display(description="app fee")
    def app_fee_display(self, booking: Booking) -> str:
        return money.display(booking.app_fee, booking.currency)

    @admin.display(description="listener's share")
    def listener_amount_display(self, booking: Booking) -> str:
        return money.display(booking.listener_amount, booking.currency)

    def get_readonly_fields(self, request, obj=None):
        money_fields = {"total_amount", "app_fee", "listener_amount"}
        fields = [field.name for field in Booking._meta.fields if field.name not in {"notes", *money_fields}]
        return [*fields, "total_display", "app_fee_display", "listener_amount_display"]

    def get_fields(self, request, obj=None):
        return [*self.get_readonly_fields(request, obj), "notes"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
