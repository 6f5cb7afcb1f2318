from django.contrib import admin

from billing import money
from booking.models import Booking, BookingPackage


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

    @admin.display(description="total", ordering="total_amount")
    def total_display(self, booking: Booking) -> str:
        return f"{money.format_amount(booking.total_amount)} {booking.currency.upper()}"

    @admin.display(description="app fee")
    def app_fee_display(self, booking: Booking) -> str:
        return f"{money.format_amount(booking.app_fee)} {booking.currency.upper()}"

    @admin.display(description="listener's share")
    def listener_amount_display(self, booking: Booking) -> str:
        return f"{money.format_amount(booking.listener_amount)} {booking.currency.upper()}"

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
