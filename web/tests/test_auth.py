import pytest

from web.models import User
from web.testing import auth_client
from web.tests.factories import TalkerFactory

pytestmark = pytest.mark.django_db


def test_register_then_sign_in_then_me(api_client):
    response = api_client.post(
        "/api/auth/register/",
        {"username": "ada", "password": "a-long-passphrase-42", "email": "ada@example.com", "role": "listener"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["role"] == "listener"

    tokens = api_client.post("/api/auth/token/", {"username": "ada", "password": "a-long-passphrase-42"}, format="json")
    assert tokens.status_code == 200
    access = tokens.json()["access"]

    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    me = api_client.get("/api/auth/me/")
    assert me.status_code == 200
    assert me.json()["username"] == "ada"


def test_refresh_rotates_and_the_old_refresh_token_is_refused(api_client):
    TalkerFactory(username="bo")
    tokens = api_client.post(
        "/api/auth/token/", {"username": "bo", "password": "correct-horse-battery-staple"}, format="json"
    ).json()

    rotated = api_client.post("/api/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert rotated.status_code == 200
    assert rotated.json()["refresh"] != tokens["refresh"]

    reused = api_client.post("/api/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert reused.status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "x1", "password": "a-long-passphrase-42", "email": "x1@example.com", "role": "admin"}, "role"),
        ({"username": "x2", "password": "a-long-passphrase-42", "email": "not-an-email", "role": "talker"}, "email"),
        ({"username": "x3", "password": "123", "email": "x3@example.com", "role": "talker"}, "password"),
        ({"password": "a-long-passphrase-42", "email": "x4@example.com", "role": "talker"}, "username"),
    ],
)
def test_register_rejects_bad_input_naming_the_field(api_client, body, field):
    response = api_client.post("/api/auth/register/", body, format="json")

    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not User.objects.filter(email=body.get("email")).exists()


def test_register_refuses_a_taken_username(api_client):
    TalkerFactory(username="taken")
    response = api_client.post(
        "/api/auth/register/",
        {"username": "TAKEN", "password": "a-long-passphrase-42", "email": "t@example.com", "role": "talker"},
        format="json",
    )
    assert response.status_code == 400
    assert "username" in response.json()["error"]["fields"]


def test_me_without_a_token_is_401(api_client):
    response = api_client.get("/api/auth/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_me_with_a_token_shows_the_role():
    user = TalkerFactory()
    assert auth_client(user).get("/api/auth/me/").json()["role"] == "talker"


@pytest.mark.parametrize("username", ['"bo\\u0000"', '"\\ud800"', '["bo"]'])
def test_a_malformed_username_at_sign_in_is_a_400_naming_it(api_client, username):
    # PostgreSQL cannot compare text with NUL or a lone surrogate: the lockout's lookup must never see one.
    body = '{"username": %s, "password": "correct-horse-battery-staple"}' % username
    response = api_client.post("/api/auth/token/", body, content_type="application/json")

    assert response.status_code == 400, response.content
    assert "username" in response.json()["error"]["fields"]
