"""Overload degrades instead of collapsing: beyond ``MAX_CONCURRENT_REQUESTS`` a process answers 503 with
Retry-After at once, without the database (config/middleware.py), and gunicorn keeps a thread free to say so
(config/gunicorn.py). The figures under load are in docs/benchmarks.md ("Mixed load").

No test here is marked for the database: any query the refusal made would fail it."""

import json
import runpy
import threading
import time
from pathlib import Path

import pytest
from django.core.exceptions import MiddlewareNotUsed
from django.http import HttpResponse
from django.test import RequestFactory

from config.middleware import LoadSheddingMiddleware

ROOT = Path(__file__).resolve().parent.parent


class Held:
    """A view that holds its request until told to finish, saying when it has started."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.finish = threading.Event()

    def __call__(self, request) -> HttpResponse:
        if request.path == "/slow/":
            self.started.set()
            assert self.finish.wait(5), "the test never let the held request finish"
        return HttpResponse("served")


@pytest.fixture
def one_slot(settings):
    settings.MAX_CONCURRENT_REQUESTS = 1
    settings.REQUEST_QUEUE_TIMEOUT = 0
    settings.REQUEST_MAX_AGE = 0


@pytest.fixture
def held(one_slot):
    """The middleware with its one slot taken by a request in another thread; released at the end."""
    view = Held()
    middleware = LoadSheddingMiddleware(view)
    answers: list[HttpResponse] = []

    running = threading.Thread(target=lambda: answers.append(middleware(RequestFactory().get("/slow/"))))
    running.start()
    assert view.started.wait(5)
    yield middleware
    view.finish.set()
    running.join(5)
    assert [answer.status_code for answer in answers] == [200]


def test_a_request_beyond_the_limit_is_refused_at_once_with_503_and_retry_after(held, rf):
    """GIVEN a process whose one slot serves a request WHEN a page and an API request come THEN both are answered
    503 with Retry-After without waiting for it: the page a short one for people (and htmx's error region), the API
    in its error shape; /healthz still answers."""
    page = held(rf.get("/portfolio/"))
    api = held(rf.get("/api/v1/handovers/", HTTP_AUTHORIZATION="Bearer x"))
    health = held(rf.get("/healthz"))

    assert page.status_code == 503
    assert page["Retry-After"] == "2"
    assert page["Cache-Control"] == "no-store"
    html = page.content.decode()
    assert 'data-testid="overloaded"' in html
    assert "data-htmx-error" in html
    assert "Try again in a few seconds" in html
    assert api.status_code == 503
    assert api["Retry-After"] == "2"
    assert api["Content-Type"] == "application/json"
    assert json.loads(api.content) == {
        "error": {
            "status": 503,
            "code": "overloaded",
            "message": "The service is busy right now and could not take this request. Try again in a few seconds.",
            "fields": {},
        }
    }
    assert health.status_code == 200


def test_as_many_wait_for_a_slot_as_run_and_the_next_one_is_refused_without_waiting(held, settings, rf):
    """GIVEN one slot taken and its one place in the queue taken WHEN a request comes, with up to 5 s to wait THEN it
    is refused at once; and a request that does wait for the slot is served when the slot comes free."""
    held.wait = 5.0
    assert held.queue.acquire(blocking=False)  # someone is already waiting
    started = time.monotonic()
    refused = held(rf.get("/"))
    assert refused.status_code == 503
    assert time.monotonic() - started < 1
    held.queue.release()

    answers: list[HttpResponse] = []
    waiting = threading.Thread(target=lambda: answers.append(held(rf.get("/"))))
    waiting.start()
    held.get_response.finish.set()  # the held request ends, its slot goes to the one waiting
    waiting.join(5)
    assert [answer.status_code for answer in answers] == [200]


def test_the_slot_is_given_back_when_the_request_ends_even_when_it_fails(one_slot, rf):
    def failing(request):
        raise RuntimeError("the view failed")

    middleware = LoadSheddingMiddleware(failing)
    with pytest.raises(RuntimeError):
        middleware(rf.get("/"))

    middleware.get_response = lambda request: HttpResponse("served")
    assert middleware(rf.get("/")).status_code == 200


def test_a_request_that_waited_too_long_in_front_of_the_application_is_refused(one_slot, settings, rf):
    """``X-Request-Start`` as nginx (seconds), Heroku (milliseconds) or New Relic's agents (microseconds) write it;
    a stamp it cannot read is ignored."""
    settings.REQUEST_MAX_AGE = 5
    middleware = LoadSheddingMiddleware(lambda request: HttpResponse("served"))
    now, old = time.time(), time.time() - 10

    def status(stamp: str) -> int:
        return middleware(rf.get("/", HTTP_X_REQUEST_START=stamp)).status_code

    assert [status(f"t={old:.3f}"), status(f"{int(old * 1e3)}"), status(f"t={int(old * 1e6)}")] == [503] * 3
    assert [status(f"t={now:.3f}"), status(f"{int(now * 1e3)}"), status(f"t={int(now * 1e6)}")] == [200] * 3
    assert [status("t=soon"), status("")] == [200, 200]


def test_no_limit_when_max_concurrent_requests_is_0(settings):
    settings.MAX_CONCURRENT_REQUESTS = 0
    with pytest.raises(MiddlewareNotUsed):
        LoadSheddingMiddleware(lambda request: HttpResponse())


def test_gunicorn_runs_threads_beyond_the_slots_from_the_environment(monkeypatch):
    for name in ("WEB_CONCURRENCY", "WEB_THREADS", "WEB_BIND", "HANDOVER_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MAX_CONCURRENT_REQUESTS", "6")
    default = runpy.run_path(str(ROOT / "config" / "gunicorn.py"))
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("WEB_THREADS", "20")
    monkeypatch.setenv("HANDOVER_PORT", "8123")
    chosen = runpy.run_path(str(ROOT / "config" / "gunicorn.py"))

    assert default["worker_class"] == "gthread"
    assert (default["workers"], default["threads"], default["bind"]) == (2, 24, "127.0.0.1:8000")
    assert (chosen["workers"], chosen["threads"], chosen["bind"]) == (3, 20, "127.0.0.1:8123")
