"""Issue 17 item 7: a 500 is JSON with the request id, wherever it happens (Django's handler500 as well
as the API middleware), and 404/400/403 under /api/ too; other pages keep Django's pages."""

import pytest
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.test import Client
from django.urls import include, path

from web import urls as web_urls


def _boom(request):
    raise RuntimeError("boom")


def _suspicious(request):
    raise SuspiciousOperation("bad")


def _forbidden(request):
    raise PermissionDenied


# This module is the URLconf of these tests: the project's routes, plus views that fail.
urlpatterns = [
    path("boom/", _boom),
    path("api/boom/", _boom),
    path("api/suspicious/", _suspicious),
    path("api/forbidden/", _forbidden),
    path("", include(web_urls)),
]
handler400 = web_urls.handler400
handler403 = web_urls.handler403
handler404 = web_urls.handler404
handler500 = web_urls.handler500

pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]


@pytest.fixture
def client():
    return Client(raise_request_exception=False)


def _error(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["request_id"] == response["X-Request-ID"]
    return error


@pytest.mark.parametrize("path", ["/boom/", "/api/boom/"])
def test_an_unexpected_exception_is_a_json_500_naming_the_request(client, path):
    error = _error(client.get(path, HTTP_X_REQUEST_ID="req-17-item-7"), 500)

    assert error["code"] == "server_error"
    assert error["request_id"] == "req-17-item-7"
    assert "boom" not in error["message"]  # nothing of the exception leaks


def test_api_400_403_404_are_json_with_the_request_id(client):
    assert _error(client.get("/api/suspicious/"), 400)["code"] == "bad_request"
    assert _error(client.get("/api/forbidden/"), 403)["code"] == "permission_denied"
    assert _error(client.get("/api/no/such/route/"), 404)["code"] == "not_found"


def test_pages_outside_the_api_keep_djangos_404(client):
    response = client.get("/no/such/page/")

    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")
