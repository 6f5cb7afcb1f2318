"""The client's address, as the outermost trusted proxy saw it (settings.TRUSTED_PROXY_COUNT).

X-Forwarded-For is written by whoever sends the request; only the entries our own proxies appended can be
believed. With N trusted proxies the client is the N-th address from the right; with none, REMOTE_ADDR.
Used by the throttles and by django-axes, so both key on the same address.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    remote_addr = request.META.get("REMOTE_ADDR", "") or ""
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies <= 0 or not forwarded:
        return remote_addr
    addresses = [address.strip() for address in forwarded.split(",") if address.strip()]
    if not addresses:
        return remote_addr
    return addresses[-min(proxies, len(addresses))][:64]
