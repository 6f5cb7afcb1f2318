from django.contrib import admin, messages

from billing import money
from billing.stripe_gateway import StripeGatewayError
from payouts import selectors, services
from payouts.models import ListenerPayout, ListenerPayoutSettings, Payout, StripeListenerAccount


class EarningInline(admin.TabularInline):
    model = ListenerPayout
    fk_name = "payout"
    extra = 0
    can_delete = False
    fields = ("id", "booking", "amount", "amount_reversed", "status", "payable_at")
    readonly_fields = fields
    show_change_link = True


@admin.register(Payout)
class PayoutAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "listener",
        "schedule",
        "period_start",
        "period_end",
        "amount_display",
        "status",
        "reached_stripe",
        "stripe_transfer_id",
        "attempts",
        "failure_reason",
    )
    list_filter = ("status", "schedule", "period_start")
    search_fields = ("listener__username", "listener__email", "stripe_transfer_id")
    date_hierarchy = "period_start"
    readonly_fields = [field.name for field in Payout._meta.fields]
    inlines = [EarningInline]
    actions = ["retry_failed"]

    @admin.display(description="amount")
    def amount_display(self, payout: Payout) -> str:
        return money.display(payout.amount, payout.currency)

    @admin.display(description="reached Stripe", boolean=True)
    def reached_stripe(self, payout: Payout) -> bool | None:
        """Yes: Stripe holds the transfer (its id is stored). No: never sent, or refused. Unknown: sent
        and not answered yet (the stuck-payout sweeper looks it up)."""
        if payout.stripe_transfer_id:
            return True
        if payout.status == Payout.Status.PROCESSING:
            return None
        return False

    @admin.action(description="Retry the selected failed payouts")
    def retry_failed(self, request, queryset):
        for payout in queryset.filter(status=Payout.Status.FAILED):
            result = services.payout_retry(payout_id=payout.pk)
            level = messages.SUCCESS if result.status == Payout.Status.PAID else messages.WARNING
            self.message_user(request, f"Payout #{result.pk}: {result.status} {result.failure_reason}", level)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ListenerPayout)
class EarningAdmin(admin.ModelAdmin):
    list_display = ("id", "listener", "booking", "amount_display", "amount_reversed", "status", "payable_at", "payout")
    list_filter = ("status", "payout__period_start")
    search_fields = ("listener__username", "listener__email")
    raw_id_fields = ("listener", "booking", "payment", "payout")
    readonly_fields = [field.name for field in ListenerPayout._meta.fields]

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, earning: ListenerPayout) -> str:
        return money.display(earning.amount, earning.currency)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ListenerPayoutSettings)
class ListenerPayoutSettingsAdmin(admin.ModelAdmin):
    list_display = ("listener", "schedule", "minimum_amount", "payouts_held", "hold_reason")
    list_filter = ("schedule", "payouts_held")
    search_fields = ("listener__username", "listener__email")
    raw_id_fields = ("listener",)
    actions = ["hold", "release"]

    @admin.action(description="Hold the selected listeners' payouts")
    def hold(self, request, queryset):
        for row in queryset:
            services.listener_payouts_hold(listener_id=row.listener_id, reason=f"Held by {request.user}")
        self.message_user(request, f"{queryset.count()} listener(s) held.")

    @admin.action(description="Release the selected listeners' payouts")
    def release(self, request, queryset):
        for row in queryset:
            services.listener_payouts_release(listener_id=row.listener_id)
        self.message_user(request, f"{queryset.count()} listener(s) released.")


@admin.register(StripeListenerAccount)
class StripeListenerAccountAdmin(admin.ModelAdmin):
    list_display = (
        "stripe_account_id",
        "listener",
        "charges_enabled",
        "payouts_enabled",
        "details_submitted",
        "transfers_capability",
        "transfers_capability_reason",
        "disabled_reason",
        "held_amount",
        "payout_failed_at",
    )
    list_filter = ("transfers_capability", "payouts_enabled", "details_submitted", "charges_enabled")
    search_fields = ("stripe_account_id", "listener__username", "listener__email")
    readonly_fields = [field.name for field in StripeListenerAccount._meta.fields]
    actions = ["refresh_from_stripe"]

    @admin.action(description="Read the selected accounts again from Stripe")
    def refresh_from_stripe(self, request, queryset):
        for account in queryset:
            try:
                services.connect_account_refresh(account_id=account.stripe_account_id)
            except StripeGatewayError as error:
                self.message_user(request, f"{account.stripe_account_id}: {error}", messages.ERROR)
                continue
            account.refresh_from_db()
            self.message_user(
                request,
                f"{account.stripe_account_id}: transfers {account.transfers_capability}, "
                f"payouts {'enabled' if account.payouts_enabled else 'disabled'}",
            )

    @admin.display(description="held earnings")
    def held_amount(self, account: StripeListenerAccount) -> str:
        return money.format_amount(selectors.earnings_held_for_listener(listener_id=account.listener_id)["held_amount"])
