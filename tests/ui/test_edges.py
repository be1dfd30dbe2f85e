"""What a person sees when a request cannot reach its view: a session that ended while the page was open, a form
whose CSRF token went stale, an address that only takes a form opened in the browser."""

import pytest
from django.test import Client
from django.urls import reverse

from config.middleware import STALE_PAGE

from .conftest import EVIDENCE_URL, item_of

pytestmark = pytest.mark.django_db


def test_a_signed_out_htmx_form_sends_the_person_to_sign_in_and_back_to_their_page(handover):
    """GIVEN a handover page whose session has ended WHEN a checklist form is sent with htmx THEN the answer is no
    sign-in page swapped into the row but a redirect of the whole page, back to the handover page afterwards."""
    page = reverse("handover:detail", args=[handover.pk])
    client = Client(headers={"HX-Request": "true", "HX-Current-URL": f"http://testserver{page}"})

    response = client.post(reverse("handover:item-action", args=[item_of(handover).pk, "complete"]), {})

    assert response.status_code == 204
    assert response["HX-Redirect"] == f"{reverse('login')}?next=%2Fhandovers%2F{handover.pk}%2F"
    assert not response.content


def test_a_page_on_another_host_is_never_the_way_back(handover):
    client = Client(headers={"HX-Request": "true", "HX-Current-URL": "https://evil.example.com/phish"})

    response = client.post(reverse("handover:item-action", args=[item_of(handover).pk, "complete"]), {})

    assert response["HX-Redirect"] == f"{reverse('login')}?next=%2F"


def test_a_signed_out_plain_form_is_redirected_as_django_does(handover):
    url = reverse("handover:item-action", args=[item_of(handover).pk, "complete"])

    response = Client().post(url, {})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert "HX-Redirect" not in response


def test_an_address_that_takes_a_form_opened_in_the_browser_says_so(handover, client_for, manager):
    url = reverse("handover:item-action", args=[item_of(handover).pk, "complete"])

    response = client_for(manager).get(url)

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert "This address takes a form" in response.content.decode()


def test_a_stale_csrf_token_is_explained_in_the_products_page(handover, manager):
    """GIVEN a page loaded before its person signed out and in elsewhere (its token no longer matches) WHEN a form
    is sent THEN 403 with a message the page's htmx shows in place (``data-htmx-error``), not Django's bare page."""
    client = Client(enforce_csrf_checks=True, headers={"HX-Request": "true"})
    client.force_login(manager)

    response = client.post(
        reverse("handover:item-action", args=[item_of(handover).pk, "complete"]),
        {"url": EVIDENCE_URL},
        headers={"X-CSRFToken": "stale" * 8},
    )

    assert response.status_code == 403
    body = response.content.decode()
    assert "data-htmx-error" in body
    assert STALE_PAGE in body
    assert "DEBUG=True" not in body
