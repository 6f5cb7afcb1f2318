from axes.handlers.proxy import AxesProxyHandler
from django.http import JsonResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt import serializers as jwt_serializers
from rest_framework_simplejwt import views as jwt_views
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken
from rest_framework_simplejwt.tokens import UntypedToken

from web.api.errors import ApiError
from web.api.schema import error_responses
from web.api.throttling import AuthThrottle
from web.models import User
from web.services import user_password_change, user_register, user_tokens_revoke
from web.tokens import UserRefreshToken, token_stamp_valid

LOCKED_OUT_MESSAGE = "Too many failed sign-ins for this account or address; try again later."


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ("id", "username", "email", "role", "accepts_bookings", "first_name", "last_name")
        read_only_fields = fields


class RegisterInputSerializer(serializers.Serializer):
    username = serializers.RegexField(r"^[\w.@+-]+$", max_length=150)
    password = serializers.CharField(write_only=True, max_length=128)
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=User.Role.choices)


class RegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [AuthThrottle]

    @extend_schema(request=RegisterInputSerializer, responses={201: UserSerializer, **error_responses(400, 429)})
    def post(self, request):
        data = RegisterInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_register(**data.validated_data)
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: UserSerializer, **error_responses(401)})
    def get(self, request):
        return Response(UserSerializer(request.user).data)


# --- Tokens -----------------------------------------------------------------------------------------


def lockout_username(request, credentials) -> str | None:
    """Usernames are case-insensitive, so are their failure counters."""
    username = (credentials or {}).get("username")
    if username is None and hasattr(request, "POST"):
        username = request.POST.get("username")
    return str(username).strip().lower()[:150] if username else None


def lockout_response(request, original_response=None, credentials=None):
    """django-axes' answer to a locked-out client (the admin's login form; the API raises its own)."""
    body = {"error": {"code": "locked_out", "message": LOCKED_OUT_MESSAGE, "fields": {}}, "detail": LOCKED_OUT_MESSAGE}
    return JsonResponse(body, status=status.HTTP_429_TOO_MANY_REQUESTS)


def _refuse_when_locked_out(request, username) -> None:
    credentials = {"username": username if isinstance(username, str) else ""}
    if not AxesProxyHandler.is_allowed(request, credentials):
        raise ApiError(LOCKED_OUT_MESSAGE, status_code=status.HTTP_429_TOO_MANY_REQUESTS, code="locked_out")


class TokenObtainSerializer(jwt_serializers.TokenObtainPairSerializer):
    token_class = UserRefreshToken

    def validate(self, attrs):
        # After the fields' own checks: the lockout's lookup never sees a NUL or a lone surrogate, which
        # PostgreSQL cannot compare (a 500), nor a username that is not a string.
        _refuse_when_locked_out(self.context["request"], attrs[self.username_field])
        return super().validate(attrs)


class TokenObtainView(jwt_views.TokenObtainPairView):
    """Sign in. Failed attempts lock the username and the client address (django-axes), and the endpoint
    is throttled per address."""

    serializer_class = TokenObtainSerializer
    throttle_classes = [AuthThrottle]

    @extend_schema(responses={200: jwt_serializers.TokenObtainPairSerializer, **error_responses(400, 401, 429)})
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


class TokenRefreshSerializer(jwt_serializers.TokenRefreshSerializer):
    token_class = UserRefreshToken

    def validate(self, attrs):
        raw = attrs["refresh"]
        try:
            refresh = self.token_class(raw)
        except TokenError:
            _revoke_on_reuse(raw)
            raise AuthenticationFailed("The refresh token is invalid, expired or revoked.", code="token_not_valid")
        user = User.objects.filter(pk=refresh.get("user_id"), is_active=True).first()
        if user is None or not token_stamp_valid(user=user, token=refresh):
            raise AuthenticationFailed("The refresh token has been revoked; sign in again.", code="token_revoked")
        return super().validate(attrs)


def _revoke_on_reuse(raw: str) -> None:
    """A genuine refresh token that was already rotated away is being replayed: whoever holds it, the
    token family is compromised, so every token of its user is revoked (the user signs in again)."""
    try:
        # Checks the signature and expiry, not the blacklist (simplejwt annotates the raw token as Token).
        token = UntypedToken(raw)  # type: ignore[arg-type]
    except TokenError:
        return
    if token.get("token_type") != "refresh":
        return
    if not BlacklistedToken.objects.filter(token__jti=token.get("jti")).exists():
        return
    user = User.objects.filter(pk=token.get("user_id")).first()
    # A token of a family already revoked (password change, earlier reuse) changes nothing: replaying it
    # must not let whoever holds it sign the user out of the session they started since.
    if user is not None and token_stamp_valid(user=user, token=token):
        user_tokens_revoke(user_id=user.pk)


class TokenRefreshView(jwt_views.TokenRefreshView):
    """Rotate a refresh token. Replaying one that was already rotated revokes all of the user's tokens."""

    serializer_class = TokenRefreshSerializer
    throttle_classes = [AuthThrottle]

    @extend_schema(responses={200: jwt_serializers.TokenRefreshSerializer, **error_responses(400, 401, 429)})
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


class LogoutInputSerializer(serializers.Serializer):
    refresh = serializers.CharField(max_length=4096)
    everywhere = serializers.BooleanField(
        default=False, help_text="Revoke every token of the user (all devices), not only this refresh token."
    )


class LogoutView(APIView):
    """Sign out: the refresh token is blacklisted (its access tokens expire within JWT_ACCESS_MINUTES);
    with `everywhere`, every access and refresh token of the user is refused at once."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=LogoutInputSerializer, responses={204: None, **error_responses(400, 401)})
    def post(self, request):
        data = LogoutInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            refresh = UserRefreshToken(data.validated_data["refresh"])
        except TokenError:
            raise ApiError("The refresh token is invalid, expired or revoked.", status_code=400, field="refresh")
        if str(refresh.get("user_id")) != str(request.user.pk):
            raise ApiError("The refresh token is not yours.", status_code=400, field="refresh")
        refresh.blacklist()
        if data.validated_data["everywhere"]:
            user_tokens_revoke(user_id=request.user.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PasswordChangeInputSerializer(serializers.Serializer):
    old_password = serializers.CharField(max_length=128)
    new_password = serializers.CharField(max_length=128)


class PasswordChangeView(APIView):
    """Change the password. Every token issued before is revoked; the answer carries fresh tokens."""

    permission_classes = [IsAuthenticated]
    throttle_classes = [AuthThrottle]

    @extend_schema(
        request=PasswordChangeInputSerializer,
        responses={
            200: inline_serializer(
                "PasswordChanged", {"access": serializers.CharField(), "refresh": serializers.CharField()}
            ),
            **error_responses(400, 401, 429),
        },
    )
    def post(self, request):
        data = PasswordChangeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_password_change(user=request.user, **data.validated_data)
        refresh = UserRefreshToken.for_user(user)
        return Response({"access": str(refresh.access_token), "refresh": str(refresh)})
