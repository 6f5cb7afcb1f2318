import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_openapi_schema_generates_and_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    assert "/api/payment/bookings/create_booking/" in text
    assert "/api/auth/token/" in text


def test_docs_page_is_served_without_a_cdn(client):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    assert b"cdn" not in page.content.lower()
    assert b"/static/drf_spectacular_sidecar/" in page.content


def _schema(client) -> dict:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return response.json()


def test_every_operation_declares_its_error_answers_in_the_error_shape(client):
    schema = _schema(client)

    assert "Error" in schema["components"]["schemas"]
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            for code in ("400", "413", "415", "429"):
                assert responses[code]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"
                }, (method, path, code)
            if operation.get("security") and {} not in operation["security"]:
                assert {"401", "403"} <= set(responses), (method, path)
    assert "404" in schema["paths"]["/api/payment/bookings/{id}/"]["get"]["responses"]


def test_the_webhook_declares_its_required_stripe_signature_header(client):
    operation = _schema(client)["paths"]["/api/payment/stripe/webhook/"]["post"]

    [header] = [p for p in operation["parameters"] if p["in"] == "header"]
    assert header["name"] == "Stripe-Signature"
    assert header["required"] is True
    assert "400" in operation["responses"]
