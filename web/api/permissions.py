from rest_framework.permissions import BasePermission


class IsTalker(BasePermission):
    message = "Only talkers can do this."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_talker)


class IsListener(BasePermission):
    message = "Only listeners can do this."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_listener)
