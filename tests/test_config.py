import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The production environment the README documents (all of it; SECRET_KEY is random per deployment).
PRODUCTION_ENV = {
    "SECRET_KEY": "k" * 20 + "a-production-secret-that-is-long-enough-1234567890",
    "ALLOWED_HOSTS": "handover.example.com",
    "DATABASE_URL": "sqlite:////tmp/handover-check.sqlite3",
}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DEBUG")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.django_db
def test_healthz_reports_database_up(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["checks"]["database"]["status"] == "up"


@pytest.mark.django_db
def test_healthz_reports_the_last_detection_pass_and_when_it_is_late(client, settings):
    from datetime import timedelta

    from django.utils import timezone

    from handover.models import DetectionRun

    # No beat pass yet: "waiting" early in this process's life, "down" after the startup grace.
    assert client.get("/healthz").json()["checks"]["scheduler"]["status"] in {"waiting", "down"}

    finished = timezone.now() - timedelta(seconds=30)
    DetectionRun.objects.create(started_at=finished, finished_at=finished, source="beat")
    scheduler = client.get("/healthz").json()["checks"]["scheduler"]
    assert scheduler["status"] == "up"
    assert scheduler["last_pass"] == finished.isoformat()

    settings.STALL_DETECT_INTERVAL = 5
    assert client.get("/healthz").json()["checks"]["scheduler"]["status"] == "stale"


@pytest.mark.django_db
def test_healthz_reports_an_unreachable_broker_as_degraded_not_down(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"

    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["broker"]["status"] == "down"


def test_healthz_refuses_writes(client):
    assert client.post("/healthz").status_code == 405


def test_production_settings_pass_deploy_check_with_documented_env():
    result = _manage(
        "check", "--deploy", "--fail-level", "WARNING", "--settings=config.settings.production", env=PRODUCTION_ENV
    )

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize("secret", ["", "short", "django-insecure-" + "x" * 60])
def test_production_settings_refuse_to_start_without_a_real_secret_key(secret):
    result = _manage("check", "--settings=config.settings.production", env={**PRODUCTION_ENV, "SECRET_KEY": secret})

    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_the_suite_runs_on_the_test_settings_whatever_the_environment_says(settings):
    """`make test` exports the local settings for the app; the suite must still run on config.settings.test
    (pyproject's --ds), or every password would be hashed the slow way and email printed to the console."""
    assert settings.SETTINGS_MODULE == "config.settings.test"
    assert settings.PASSWORD_HASHERS == ["django.contrib.auth.hashers.MD5PasswordHasher"]
    assert settings.EMAIL_BACKEND == "django.core.mail.backends.locmem.EmailBackend"
