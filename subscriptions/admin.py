from django.contrib import admin, messages
from django.db import transaction

from common.errors import DomainError
from subscriptions import services
from subscriptions.models import Subscription, SubscriptionInvoice, SubscriptionPlan, SubscriptionSession


@admin.register(SubscriptionPlan)
class SubscriptionPlanAdmin(admin.ModelAdmin):
    """Editable; every save asks a worker to bring the Stripe Product and Price in line (a new Price
    for a new amount or interval: running subscriptions keep theirs)."""

    list_display = (
        "id",
        "display_name",
        "package",
        "interval",
        "price_cents",
        "app_fee_percent",
        "active",
        "stripe_price_id",
    )
    list_filter = ("interval", "active")
    readonly_fields = ("stripe_product_id", "stripe_price_id", "synced_signature", "sync_requested_at")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        services.plan_sync_enqueue(plan_id=obj.pk)


class SessionInline(admin.TabularInline):
    model = SubscriptionSession
    fields = readonly_fields = ("occurrence", "booking")
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class InvoiceInline(admin.TabularInline):
    model = SubscriptionInvoice
    fields = readonly_fields = (
        "stripe_invoice_id",
        "billing_reason",
        "occurrence",
        "status",
        "amount_due",
        "amount_paid",
        "attempt_count",
        "booking",
        "review_reason",
    )
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    """Read-only: a subscription changes through `subscriptions.services` (and Stripe's events)."""

    list_display = ("id", "talker", "listener", "plan", "status", "current_period_end", "cancel_at_period_end")
    list_filter = ("status",)
    search_fields = ("id", "talker__username", "listener__username", "stripe_subscription_id")
    list_select_related = ("talker", "listener", "plan__package")
    inlines = [SessionInline, InvoiceInline]
    actions = ["cancel_at_period_end", "cancel_now_with_refund", "resync_from_stripe"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Subscription._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def _each(self, request, queryset, what, run):
        for sub in queryset.select_related("listener")[:100]:
            try:
                run(sub)
            except DomainError as error:
                self.message_user(request, f"Subscription #{sub.pk}: {error}", messages.ERROR)
                continue
            self.message_user(request, f"Subscription #{sub.pk}: {what}.", messages.SUCCESS)

    @admin.action(description="Cancel at period end")
    def cancel_at_period_end(self, request, queryset):
        self._each(
            request,
            queryset,
            "cancels at period end",
            lambda sub: services.subscription_cancel(subscription_id=sub.pk, user=sub.listener),
        )

    @admin.action(description="Cancel now, refunding the current session (on the listener's behalf)")
    def cancel_now_with_refund(self, request, queryset):
        # The listener's cancellation refunds the session in full, by the policy (as for single bookings).
        self._each(
            request,
            queryset,
            "cancelled",
            lambda sub: services.subscription_cancel(subscription_id=sub.pk, user=sub.listener, at_period_end=False),
        )

    @admin.action(description="Re-read from Stripe")
    def resync_from_stripe(self, request, queryset):
        def resync(sub):
            with transaction.atomic():
                if sub.stripe_subscription_id:
                    services.subscription_sync(stripe_subscription_id=sub.stripe_subscription_id)

        self._each(request, queryset, "re-read", resync)
