from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

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
    candidate.save()
    return candidate
