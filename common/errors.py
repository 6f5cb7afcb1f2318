"""Domain errors: what a service raises when a business rule refuses a request.

They know nothing of HTTP. `web.api.errors` maps each class to its status (Invalid 400,
NotPermitted 403, NotFound 404, Conflict 409) and renders the API's one error shape; the admin shows
their message; a task logs it. `field` names the input at fault, `code` is the machine-readable reason.
"""

from __future__ import annotations


class DomainError(Exception):
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code


class Invalid(DomainError):
    """The input breaks a rule: fix it and ask again."""


class NotPermitted(DomainError):
    """The caller may not do this, whatever the input."""

    code = "permission_denied"


class NotFound(DomainError):
    """Nothing the caller may see has this id."""

    code = "not_found"


class Conflict(DomainError):
    """The request is valid but the state it meets refuses it (a slot taken, a booking already paid)."""

    code = "conflict"
