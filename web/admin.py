from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from web.models import User


@admin.register(User)
class TalkpayUserAdmin(UserAdmin):
    list_display = ("username", "email", "role", "accepts_bookings", "is_staff")
    list_filter = ("role", "accepts_bookings", "is_staff")
    fieldsets = (*UserAdmin.fieldsets, ("Marketplace", {"fields": ("role", "accepts_bookings")}))
