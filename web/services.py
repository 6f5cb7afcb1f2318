from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from common.errors import Invalid
from web.models import User


@transaction.atomic
def user_register(*, username: str, password: str, email: str, role: str) -> User:
    if User.objects.filter(username__iexact=username).exists():
        raise Invalid("A user with that username already exists.", field="username", code="unique")
    candidate = User(username=username, email=email, role=role)
    try:
        validate_password(password, user=candidate)
    except ValidationError as error:
        raise Invalid(" ".join(error.messages), field="password", code="password_invalid") from error
    candidate.set_password(password)
    try:
        with transaction.atomic():
            candidate.save()
    except IntegrityError as error:
        # A concurrent registration of the same name (in any case) won the race.
        raise Invalid("A user with that username already exists.", field="username", code="unique") from error
    return candidate


@transaction.atomic
def user_tokens_revoke(*, user_id: int) -> None:
    """Refuse every access and refresh token issued to the user so far (web.tokens checks the generation)."""
    User.objects.filter(pk=user_id).update(token_generation=F("token_generation") + 1)
    outstanding = OutstandingToken.objects.filter(user_id=user_id, blacklistedtoken__isnull=True)
    BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in outstanding], ignore_conflicts=True
    )


@transaction.atomic
def user_password_change(*, user: User, old_password: str, new_password: str) -> User:
    """Change the password; every token issued before is revoked with it (the new one is signed in afresh)."""
    if not user.check_password(old_password):
        raise Invalid("The current password is wrong.", field="old_password", code="password_wrong")
    try:
        validate_password(new_password, user=user)
    except ValidationError as error:
        raise Invalid(" ".join(error.messages), field="new_password", code="password_invalid") from error
    user.set_password(new_password)
    user.save(update_fields=["password"])
    user_tokens_revoke(user_id=user.pk)
    user.refresh_from_db(fields=["token_generation"])
    return user
