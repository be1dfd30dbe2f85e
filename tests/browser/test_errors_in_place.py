"""A move made in place (htmx) answers where it was made: a refusal, a failure or a server error shows next to the
control that was used and takes focus, never only at the top of a long page (config/static/js/app.js)."""

import pytest

from handover import services as hs
from tests.ui.conftest import EVIDENCE_URL, item_of

try:
    from playwright.sync_api import expect
except ImportError:  # the ``browser`` fixture skips (or fails under CI=true) with the reason
    expect = None

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FOCUS_IN = "(id) => document.activeElement !== document.body && document.activeElement.closest('#' + id) !== null"


def open_complete_form(page, handover, item):
    page.goto(f"/handovers/{handover.pk}/")
    row = page.locator(f"#item-{item.pk}")
    row.get_by_test_id("item-complete-open").click()
    return row


def test_a_refused_item_move_shows_its_message_next_to_the_item_and_takes_focus(
    new_page, handover, manager, console_log
):
    """GIVEN the manager on the handover page with an item's "Mark done" form open
    WHEN they send it empty, and then, after the item was marked done elsewhere, send it again
    THEN each refusal shows in the item's row, in view, with focus on it (the field at fault, then the refusal),
    and nothing goes to the alert region at the top of the page."""
    item = item_of(handover)
    page = new_page(manager)
    row = open_complete_form(page, handover, item)

    with console_log.expecting("status of 400", page):
        row.get_by_test_id("item-complete").click()
        expect(row.get_by_test_id("field-error").first).to_be_visible()
    assert page.evaluate(FOCUS_IN, f"item-{item.pk}"), page.evaluate("document.activeElement.outerHTML")
    expect(page.locator(":focus")).to_be_in_viewport()

    hs.item_complete(item=item, by=manager, evidence_url=EVIDENCE_URL)  # meanwhile, in another tab
    row.get_by_label("Evidence note").fill("Restore test passed.")
    with console_log.expecting("status of 409", page):
        row.get_by_test_id("item-complete").click()
        refusal = row.get_by_test_id("form-error")
        expect(refusal).to_be_visible()
    expect(refusal).to_be_focused()
    expect(refusal).to_be_in_viewport()
    expect(row.get_by_test_id("item-status")).to_have_text("Done")
    expect(page.get_by_test_id("htmx-error")).to_be_empty()


def test_a_server_error_in_an_htmx_move_shows_next_to_the_form_with_the_reference_of_its_log_line(
    new_page, handover, manager, console_log, monkeypatch, caplog
):
    """GIVEN the manager on the handover page, and the service behind "Mark done" failing (as SQLite's "database
    is locked" did) WHEN they send the form THEN the 500's message shows right after that form, with focus, and with
    the reference Django's log line of the traceback carries; the item is untouched."""

    def crash(**kwargs):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(hs, "item_complete", crash)  # the live server runs in this process
    item = item_of(handover)
    page = new_page(manager)
    row = open_complete_form(page, handover, item)
    row.get_by_label("Evidence note").fill("Restore test passed.")

    with console_log.expecting("status of 500", page), console_log.expecting("Response Status Error Code 500", page):
        with page.expect_response(lambda response: f"/items/{item.pk}/complete/" in response.url) as answer:
            row.get_by_test_id("item-complete").click()
        error = row.get_by_test_id("action-error")
        expect(error).to_be_visible()

    reference = answer.value.headers["x-request-id"]
    expect(error).to_contain_text("Something went wrong")
    expect(error.get_by_test_id("error-reference")).to_have_text(reference)
    expect(error).to_be_focused()
    expect(error).to_be_in_viewport()
    expect(page.get_by_test_id("htmx-error")).to_be_empty()
    expect(row.get_by_test_id("item-status")).to_have_text("Open")
    logged = [r for r in caplog.records if r.name == "django.request" and getattr(r, "request_id", None) == reference]
    assert logged, [(r.name, getattr(r, "request_id", None)) for r in caplog.records]
    assert logged[0].exc_info is not None  # the traceback is the line the reference finds

    # Trying again clears the earlier message before the new answer comes.
    monkeypatch.undo()
    row.get_by_test_id("item-complete").click()
    expect(row.get_by_test_id("item-flash")).to_have_text("Marked done.")
    expect(page.get_by_test_id("action-error")).to_have_count(0)


def test_a_form_refused_without_htmx_brings_focus_to_its_error_on_the_page_that_answers(
    new_page, handover, manager, console_log
):
    """GIVEN the manager on the handover page WHEN they send an empty comment on the whole handover (a form posted
    without htmx) THEN the page that answers (400) has focus on the comment field at fault, scrolled into view,
    rather than at the top of the page."""
    page = new_page(manager)
    page.goto(f"/handovers/{handover.pk}/")
    form = page.locator("#comments form")

    with console_log.expecting("status of 400", page):
        form.get_by_test_id("handover-comment").click()
        page.wait_for_load_state()
    comment = page.locator("#comments").get_by_label("Comment")
    expect(comment).to_be_focused()
    expect(comment).to_be_in_viewport()
    expect(page.locator("#comments").get_by_test_id("field-error")).to_be_visible()
