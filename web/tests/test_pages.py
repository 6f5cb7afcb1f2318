"""Pages Talkpay serves to browsers: Connect onboarding's return and refresh, the Redoc page."""

import pytest
from django.conf import settings


@pytest.mark.django_db
def test_connect_return_and_refresh_urls_are_pages_talkpay_serves(client):
    # the URLs handed to Stripe are on this web (PUBLIC_BASE_URL), and they answer
    for url, words in (
        (settings.CONNECT_RETURN_URL, "Onboarding complete"),
        (settings.CONNECT_REFRESH_URL, "must be restarted"),
    ):
        assert url.startswith(settings.PUBLIC_BASE_URL)
        response = client.get(url.removeprefix(settings.PUBLIC_BASE_URL))
        assert response.status_code == 200 and words in response.content.decode()


@pytest.mark.django_db
def test_redoc_loads_nothing_from_a_cdn(client):
    page = client.get("/api/redoc/").content.decode()
    assert "redoc.standalone.js" in page
    assert "googleapis" not in page and "gstatic" not in page and "cdn." not in page
