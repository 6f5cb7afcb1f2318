from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


class User(AbstractUser):
    """A marketplace member: a talker books and pays sessions, a listener gives them and earns."""

    class Role(models.TextChoices):
        TALKER = "talker", "Talker"
        LISTENER = "listener", "Listener"

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.TALKER)
    # A listener can pause new bookings without leaving the marketplace.
    accepts_bookings = models.BooleanField(default=True)
    # Bumped to revoke every token issued so far (web.tokens); a password change revokes them too.
    token_generation = models.PositiveIntegerField(default=0)

    class Meta(AbstractUser.Meta):
        constraints = [
            # "raceuser" and "RACEUSER" are the same person to sign-in and to a reader; two concurrent
            # registrations cannot both pass the service's check.
            models.UniqueConstraint(Lower("username"), name="user_username_ci_unique"),
        ]

    @property
    def is_talker(self) -> bool:
        return self.role == self.Role.TALKER

    @property
    def is_listener(self) -> bool:
        return self.role == self.Role.LISTENER


class IdempotencyRecord(models.Model):
    """The first response to a request sent with an `Idempotency-Key` header, replayed on retries."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    endpoint = models.CharField(max_length=200)
    request_fingerprint = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Who holds the claim and since when: a claim unanswered past its lease (its request died before
    # its transaction) is taken over by a retry with a new token (web.idempotency).
    claim_token = models.CharField(max_length=32, blank=True, default="")
    claimed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=("user", "endpoint", "key"), name="idempotency_key_unique")]
