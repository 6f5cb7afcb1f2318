from django.contrib import admin, messages

from billing.models import (
    Dispute,
    LedgerEntry,
    LedgerTransaction,
    Payment,
    Refund,
    StripeCustomer,
    WebhookEvent,
    WebhookRejection,
)
from billing.webhooks.processing import webhook_event_replay


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


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = ("stripe_event_id", "type", "status", "attempts", "deliveries", "received_at", "processed_at")
    list_filter = ("status", "type")
    search_fields = ("stripe_event_id", "type", "account")
    date_hierarchy = "received_at"
    actions = ["replay"]
    readonly_fields = [field.name for field in WebhookEvent._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Replay the selected events now")
    def replay(self, request, queryset):
        # A replay runs the handler here and now; handlers are idempotent, so a processed event stays as it is.
        for stripe_event_id in queryset.values_list("stripe_event_id", flat=True)[:100]:
            outcome = webhook_event_replay(stripe_event_id=stripe_event_id)
            level = messages.ERROR if outcome == WebhookEvent.Status.FAILED else messages.INFO
            self.message_user(request, f"{stripe_event_id}: {outcome}", level)


@admin.register(WebhookRejection)
class WebhookRejectionAdmin(admin.ModelAdmin):
    list_display = ("received_at", "remote_addr", "reason")
    readonly_fields = ("reason", "remote_addr", "signature_header", "body_excerpt", "received_at")

    def has_add_permission(self, request):
        return False
