from django.contrib import admin

from billing.models import Dispute, LedgerEntry, LedgerTransaction, Payment, Refund, StripeCustomer


@admin.register(StripeCustomer)
class StripeCustomerAdmin(admin.ModelAdmin):
    list_display = ("user", "stripe_customer_id", "created_at")
    search_fields = ("user__username", "user__email", "stripe_customer_id")
    readonly_fields = ("user", "stripe_customer_id", "created_at")


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "booking",
        "talker",
        "amount",
        "amount_refunded",
        "currency",
        "status",
        "stripe_payment_intent_id",
    )
    list_filter = ("status", "currency")
    search_fields = ("id", "stripe_payment_intent_id", "stripe_charge_id", "talker__username", "booking__id")
    list_select_related = ("talker", "booking")
    readonly_fields = (
        "booking",
        "talker",
        "currency",
        "amount",
        "app_fee",
        "listener_amount",
        "amount_refunded",
        "stripe_payment_intent_id",
        "stripe_charge_id",
        "client_secret",
        "intent_requested_at",
        "succeeded_at",
        "created_at",
        "updated_at",
    )


class LedgerEntryInline(admin.TabularInline):
    model = LedgerEntry
    extra = 0
    can_delete = False
    readonly_fields = ("account", "amount")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(admin.ModelAdmin):
    list_display = ("id", "key", "kind", "currency", "booking", "created_at")
    list_filter = ("kind",)
    search_fields = ("key", "booking__id")
    inlines = [LedgerEntryInline]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Refund)
class RefundAdmin(admin.ModelAdmin):
    list_display = ("id", "payment", "amount", "status", "stripe_refund_id", "created_at")
    list_filter = ("status",)
    search_fields = ("stripe_refund_id", "payment__stripe_payment_intent_id")
    readonly_fields = ("payment", "amount", "currency", "stripe_refund_id", "created_at", "updated_at")


@admin.register(Dispute)
class DisputeAdmin(admin.ModelAdmin):
    list_display = ("stripe_dispute_id", "payment", "amount", "reason", "status", "evidence_due_by")
    list_filter = ("status",)
    search_fields = ("stripe_dispute_id", "payment__stripe_payment_intent_id")
    readonly_fields = ("payment", "stripe_dispute_id", "amount", "currency", "created_at", "closed_at")
