"""Stripe Connect onboarding for listeners."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import money
from billing.stripe_gateway import PermanentStripeError, TransientStripeError
from payouts import selectors, services
from payouts.models import StripeListenerAccount
from web.api.errors import ApiError
from web.api.permissions import IsListener


class ConnectAccountSerializer(serializers.ModelSerializer):
    can_receive_payouts = serializers.BooleanField(
        read_only=True,
        help_text="Whether payouts can be sent now: onboarding done, payouts enabled and the transfers "
        "capability active.",
    )
    transfers_capability = serializers.CharField(
        read_only=True,
        help_text="The status of the account's `transfers` capability on Stripe (active, pending, inactive, "
        "unrequested). Earnings are held, not lost, while it is not active.",
    )
    transfers_capability_reason = serializers.CharField(
        read_only=True,
        help_text="Stripe's reason while the transfers capability is not active (e.g. `pending.review`, "
        "`requirements.fields_needed`); empty when active or when Stripe gives none.",
    )

    class Meta:
        model = StripeListenerAccount
        fields = (
            "stripe_account_id",
            "charges_enabled",
            "payouts_enabled",
            "details_submitted",
            "can_receive_payouts",
            "transfers_capability",
            "transfers_capability_reason",
            "requirements",
            "disabled_reason",
            "payout_failure_code",
            "payout_failure_message",
            "payout_failed_at",
        )


class OnboardingLinkSerializer(serializers.Serializer):
    url = serializers.URLField()
    expires_at = serializers.IntegerField(allow_null=True)
    account = ConnectAccountSerializer()


class ConnectStatusSerializer(serializers.Serializer):
    account = ConnectAccountSerializer(allow_null=True)
    dashboard_url = serializers.URLField(
        allow_null=True,
        help_text="A single-use link into the listener's Stripe Express dashboard, made for this answer "
        "(it expires within minutes: open it right away). Null until onboarding is complete.",
    )
    payouts_blocked_by = serializers.ListField(child=serializers.CharField())
    held_amount = serializers.CharField()
    disputed_amount = serializers.CharField()


def _stripe_unavailable(error: Exception) -> ApiError:
    return ApiError(
        f"Stripe could not start onboarding: {getattr(error, 'message', error)}",
        code="stripe_unavailable",
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE if isinstance(error, TransientStripeError) else 502,
    )


class ConnectOnboardingView(APIView):
    """Create the listener's Express account (once) and return a fresh, single-use onboarding link."""

    permission_classes = [IsListener]

    @extend_schema(request=None, responses={201: OnboardingLinkSerializer})
    def post(self, request):
        try:
            link = services.connect_onboarding_link_create(listener=request.user)
        except (TransientStripeError, PermanentStripeError) as error:
            raise _stripe_unavailable(error)
        return Response(OnboardingLinkSerializer(link).data, status=status.HTTP_201_CREATED)


class ConnectStatusView(APIView):
    """The listener's Connect account as Stripe last reported it, and whether payouts are blocked."""

    permission_classes = [IsListener]

    @extend_schema(responses=ConnectStatusSerializer)
    def get(self, request):
        account = StripeListenerAccount.objects.filter(listener=request.user).first()
        held = selectors.earnings_held_for_listener(listener_id=request.user.pk)
        body = {
            "account": account,
            "dashboard_url": services.connect_dashboard_url(account=account) if account is not None else None,
            "payouts_blocked_by": held["reasons"],
            "held_amount": money.format_amount(held["held_amount"]),
            "disputed_amount": money.format_amount(held["disputed_amount"]),
        }
        return Response(ConnectStatusSerializer(body).data)
