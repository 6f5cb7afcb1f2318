"""API fields shared by every app's serializers."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing import money


@extend_schema_field({"type": "string", "format": "decimal", "example": "30.00"})
class CentsField(serializers.Field):
    """Integer cents in the database, a decimal string ("30.00") in the API."""

    def to_representation(self, value: int) -> str:
        return money.format_amount(value)
