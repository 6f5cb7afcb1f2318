from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from billing import money, refunds
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
from common.errors import DomainError


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
        "amount_display",
        "refunded_display",
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

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, payment: Payment) -> str:
        return money.display(payment.amount, payment.currency)

    @admin.display(description="refunded", ordering="amount_refunded")
    def refunded_display(self, payment: Payment) -> str:
        return money.display(payment.amount_refunded, payment.currency)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class LedgerEntryInline(admin.TabularInline):
    model = LedgerEntry
    extra = 0
    can_delete = False
    fields = ("account", "amount_display")
    readonly_fields = fields

    @admin.display(description="amount (debit +, credit -)")
    def amount_display(self, entry: LedgerEntry) -> str:
        return money.display(entry.amount, entry.transaction.currency)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(LedgerTransaction)
class LedgerTransactionAdmin(admin.ModelAdmin):
    """The ledger is immutable (money rule 3): viewable only; a correction is a new transaction
    posted by a service, never an edit here."""

    list_display = ("id", "key", "kind", "currency", "booking", "created_at")
    list_filter = ("kind",)
    search_fields = ("key", "booking__id")
    inlines = [LedgerEntryInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class RefundAddForm(forms.ModelForm):
    """An operator's refund: any amount up to what remains refundable, always with a reason."""

    amount_decimal = forms.CharField(label="Amount", help_text="A decimal amount, e.g. 12.50.")

    class Meta:
        model = Refund
        fields = ("payment", "reason")

    def clean(self):
        cleaned = super().clean()
        payment = cleaned.get("payment")
        if not (cleaned.get("reason") or "").strip():
            self.add_error("reason", "Say why this payment is refunded.")
        try:
            amount = money.to_cents(cleaned.get("amount_decimal") or "")
        except money.MoneyError as error:
            self.add_error("amount_decimal", str(error))
            return cleaned
        if payment is None:
            return cleaned
        remaining = refunds.payment_refundable_amount(payment=payment)
        if payment.status != Payment.Status.SUCCEEDED:
            self.add_error("payment", f"Only a succeeded payment can be refunded; this one is {payment.status}.")
        elif amount <= 0 or amount > remaining:
            self.add_error(
                "amount_decimal",
                f"Between 0.01 and {money.format_amount(remaining)} {payment.currency} can still be refunded.",
            )
        cleaned["amount_cents"] = amount
        return cleaned


@admin.register(Refund)
class RefundAdmin(admin.ModelAdmin):
    """Refunds are made by `billing.refunds` only: the add page records one (sent to Stripe by a
    worker); existing refunds are read-only, Stripe's webhooks move them."""

    list_display = ("id", "payment", "amount_display", "status", "policy", "reason", "stripe_refund_id", "created_at")
    list_filter = ("status", "policy")
    search_fields = ("stripe_refund_id", "payment__stripe_payment_intent_id", "payment__booking__id")
    list_select_related = ("payment",)
    raw_id_fields = ("payment",)
    readonly_fields = (
        "payment",
        "amount",
        "currency",
        "reason",
        "policy",
        "status",
        "stripe_refund_id",
        "failure_reason",
        "requested_by",
        "enqueued_at",
        "created_at",
        "updated_at",
    )

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, refund: Refund) -> str:
        return f"{money.format_amount(refund.amount)} {refund.currency}"

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = RefundAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return ("payment", "amount_decimal", "reason") if obj is None else self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            return
        try:
            refund = refunds.refund_create_for_admin(
                payment_id=form.cleaned_data["payment"].pk,
                amount=form.cleaned_data["amount_cents"],
                reason=form.cleaned_data["reason"],
                admin=request.user,
            )
        except DomainError as error:
            # Another refund took what remained between the form's check and the service's.
            messages.error(request, error.message)
            return
        obj.pk = obj.id = refund.pk
        obj.status = refund.status
        obj.amount = refund.amount
        messages.success(request, f"Refund of {money.format_amount(refund.amount)} recorded; a worker sends it.")

    def log_addition(self, request, obj, message):
        if obj.pk is not None:
            return super().log_addition(request, obj, message)
        return None

    def response_add(self, request, obj, post_url_continue=None):
        if obj.pk is None:
            return HttpResponseRedirect(reverse("admin:billing_refund_changelist"))
        return super().response_add(request, obj, post_url_continue)


class DisputeOpenFilter(admin.SimpleListFilter):
    title = "open"
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return (("yes", "Open"), ("no", "Closed"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(status__in=Dispute.CLOSED)
        if self.value() == "no":
            return queryset.filter(status__in=Dispute.CLOSED)
        return queryset


@admin.register(Dispute)
class DisputeAdmin(admin.ModelAdmin):
    """Disputes mirror Stripe (read-only here; evidence is submitted on Stripe). Sorted by the
    evidence deadline, so the next one due is on top; linked to the booking and the payment."""

    list_display = (
        "stripe_dispute_id",
        "booking_link",
        "payment_link",
        "amount_display",
        "reason",
        "status",
        "evidence_due_by",
        "funds_withdrawn",
        "fee",
    )
    list_filter = (DisputeOpenFilter, "status", "reason")
    search_fields = ("stripe_dispute_id", "payment__stripe_payment_intent_id", "payment__booking__id")
    list_select_related = ("payment",)
    ordering = ("evidence_due_by", "-id")
    readonly_fields = (
        "payment",
        "booking_link",
        "stripe_dispute_id",
        "amount",
        "currency",
        "reason",
        "status",
        "evidence_due_by",
        "funds_withdrawn",
        "funds_reinstated",
        "fee",
        "booking_status_before",
        "earning_status_before",
        "created_at",
        "updated_at",
        "closed_at",
    )

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, dispute: Dispute) -> str:
        return f"{money.format_amount(dispute.amount)} {dispute.currency}"

    @admin.display(description="booking")
    def booking_link(self, dispute: Dispute) -> str:
        url = reverse("admin:booking_booking_change", args=[dispute.payment.booking_id])
        return format_html('<a href="{}">Booking #{}</a>', url, dispute.payment.booking_id)

    @admin.display(description="payment")
    def payment_link(self, dispute: Dispute) -> str:
        url = reverse("admin:billing_payment_change", args=[dispute.payment_id])
        return format_html('<a href="{}">Payment #{}</a>', url, dispute.payment_id)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


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
