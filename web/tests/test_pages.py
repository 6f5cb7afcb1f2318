"""Pages Talkpay serves to browsers: Connect onboarding's return and refresh (the web app), Redoc."""

import pytest
from django.conf import settings


@pytest.mark.django_db
def test_connect_return_and_refresh_urls_follow_the_public_base_url_and_answer(client):
    # the URLs handed to Stripe are the web app's pages on this web (PUBLIC_BASE_URL), not a 404
    for url in (settings.CONNECT_RETURN_URL, settings.CONNECT_REFRESH_URL):
        assert url.startswith(settings.PUBLIC_BASE_URL)
        assert client.get(url.removeprefix(settings.PUBLIC_BASE_URL)).status_code == 200


@pytest.mark.django_db
def test_redoc_loads_nothing_from_a_cdn(client):
    page = client.get("/api/redoc/").content.decode()
    assert "redoc.standalone.js" in page
    assert "googleapis" not in page and "gstatic" not in page and "cdn." not in page
