"""JWTs that die with the credentials they were issued for.

Each token carries an `auth` claim: an HMAC of the user's password hash and token generation. A password
change (anywhere: API, admin, shell) or a revocation (user_tokens_revoke, e.g. on refresh-token reuse)
changes it, so every access and refresh token issued before is refused at once, not at its expiry.
"""

from __future__ import annotations

from typing import cast

from django.utils.crypto import constant_time_compare, salted_hmac
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AuthUser, RefreshToken

from common.prepared import PreparedQuery
from web.models import User

AUTH_CLAIM = "auth"


def user_token_stamp(user: User) -> str:
    return salted_hmac("talkpay.tokens", f"{user.password}:{user.token_generation}", algorithm="sha256").hexdigest()[
        :32
    ]


def token_stamp_valid(*, user: User, token) -> bool:
    return constant_time_compare(str(token.get(AUTH_CLAIM, "")), user_token_stamp(user))


class UserRefreshToken(RefreshToken):
    @classmethod
    def for_user(cls, user: AuthUser) -> UserRefreshToken:
        token = cast(UserRefreshToken, super().for_user(user))  # built as cls()
        token[AUTH_CLAIM] = user_token_stamp(cast(User, user))  # copied into every access token made from it
        return token


# Every authenticated request looks its user up: the statement kept compiled (common.prepared).
_USER_BY_ID = PreparedQuery(lambda user_id: User.objects.filter(pk=user_id)[:1], user_id=int)


class StampedJWTAuthentication(JWTAuthentication):
    def get_user(self, validated_token):
        user_id = validated_token.get(api_settings.USER_ID_CLAIM)
        if type(user_id) is int and api_settings.USER_ID_FIELD == "id" and not api_settings.CHECK_REVOKE_TOKEN:
            # simplejwt's own lookup and checks, on the compiled statement.
            user = _USER_BY_ID.first(user_id=user_id)
            if user is None:
                raise AuthenticationFailed("User not found", code="user_not_found")
            if api_settings.CHECK_USER_IS_ACTIVE and not user.is_active:
                raise AuthenticationFailed("User is inactive", code="user_inactive")
        else:
            user = super().get_user(validated_token)
        if not token_stamp_valid(user=user, token=validated_token):
            raise AuthenticationFailed("The token has been revoked; sign in again.", code="token_revoked")
        return user
