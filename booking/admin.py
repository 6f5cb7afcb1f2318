from django.contrib import admin

from booking.models import Booking, BookingPackage


@admin.register(BookingPackage)
class BookingPackageAdmin(admin.ModelAdmin):
    list_display = ("name", "duration_minutes", "price", "app_fee_percentage", "is_active")
    list_editable = ("price", "app_fee_percentage", "is_active")
    list_filter = ("is_active",)


@admin.register(Booking)
class BookingAdmin(admin.ModelAdmin):
    list_display = ("id", "talker", "listener", "package", "status", "scheduled_at", "total_amount", "created_at")
    list_filter = ("status",)
    search_fields = ("id", "talker__username", "listener__username", "payment__stripe_payment_intent_id")
    date_hierarchy = "scheduled_at"
    list_select_related = ("talker", "listener", "package")
    readonly_fields = ("currency", "total_amount", "app_fee", "listener_amount", "created_at", "updated_at")
    raw_id_fields = ("talker", "listener", "cancelled_by")
