"""Item 6: logout, revocation on password change, and on refresh-token reuse."""

import pytest

from web.tests.factories import TalkerFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def user():
    return TalkerFactory(username="dee")


def _tokens(client, password=PASSWORD):
    response = client.post("/api/auth/token/", {"username": "dee", "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def _me(client, access):
    return client.get("/api/auth/me/", HTTP_AUTHORIZATION=f"Bearer {access}")


def _refresh(client, refresh):
    return client.post("/api/auth/token/refresh/", {"refresh": refresh}, format="json")


def test_logout_blacklists_the_refresh_token(api_client, user):
    tokens = _tokens(api_client)

    response = api_client.post(
        "/api/auth/logout/",
        {"refresh": tokens["refresh"]},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {tokens['access']}",
    )

    assert response.status_code == 204
    assert _refresh(api_client, tokens["refresh"]).status_code == 401


def test_logout_everywhere_refuses_every_token_at_once(api_client, user):
    phone, laptop = _tokens(api_client), _tokens(api_client)

    api_client.post(
        "/api/auth/logout/",
        {"refresh": phone["refresh"], "everywhere": True},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {phone['access']}",
    )

    assert _me(api_client, laptop["access"]).status_code == 401
    assert _refresh(api_client, laptop["refresh"]).status_code == 401


def test_a_password_change_revokes_every_earlier_token(api_client, user):
    old = _tokens(api_client)

    response = api_client.post(
        "/api/auth/password/",
        {"old_password": PASSWORD, "new_password": "a-new-long-passphrase-77"},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {old['access']}",
    )

    assert response.status_code == 200, response.content
    assert _me(api_client, old["access"]).status_code == 401
    assert _me(api_client, old["access"]).json()["error"]["code"] == "token_revoked"
    assert _refresh(api_client, old["refresh"]).status_code == 401
    fresh = _me(api_client, response.json()["access"])
    assert fresh.status_code == 200, fresh.content


def test_a_password_set_outside_the_api_revokes_tokens_too(api_client, user):
    old = _tokens(api_client)

    user.set_password("set-by-an-operator-in-the-admin")
    user.save()

    assert _me(api_client, old["access"]).status_code == 401


def test_the_password_change_names_the_wrong_field(api_client, user):
    old = _tokens(api_client)

    response = api_client.post(
        "/api/auth/password/",
        {"old_password": "not-it", "new_password": "a-new-long-passphrase-77"},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {old['access']}",
    )

    assert response.status_code == 400
    assert "old_password" in response.json()["error"]["fields"]
    assert _me(api_client, old["access"]).status_code == 200


def test_reusing_a_rotated_refresh_token_revokes_its_whole_family(api_client, user):
    first = _tokens(api_client)
    second = _refresh(api_client, first["refresh"]).json()
    assert _me(api_client, second["access"]).status_code == 200

    # Someone replays the first refresh token (stolen before it was rotated).
    assert _refresh(api_client, first["refresh"]).status_code == 401

    assert _refresh(api_client, second["refresh"]).status_code == 401
    assert _me(api_client, second["access"]).status_code == 401
    assert _me(api_client, _tokens(api_client)["access"]).status_code == 200  # signing in again works


def test_replaying_a_refresh_token_revoked_by_a_password_change_does_not_sign_the_user_out_again(api_client, user):
    old = _tokens(api_client)
    api_client.post(
        "/api/auth/password/",
        {"old_password": PASSWORD, "new_password": "a-new-long-passphrase-77"},
        format="json",
        HTTP_AUTHORIZATION=f"Bearer {old['access']}",
    )
    fresh = _tokens(api_client, password="a-new-long-passphrase-77")

    assert _refresh(api_client, old["refresh"]).status_code == 401

    assert _me(api_client, fresh["access"]).status_code == 200
