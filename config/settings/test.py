"""Settings for the test suite: the same code, with fast hashing and in-memory email."""

from .base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# No collected static files in tests; WhiteNoise would warn about the missing directory.
STATIC_ROOT = None

# Without Redis the suite publishes to kombu's in-process memory transport, never into var/celery/, where the
# worker of a `make run` on the same checkout would pick the tests' tasks up. Tests of the real worker need Redis.
if not REDIS_URL:  # noqa: F405
    CELERY_BROKER_URL = "memory://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {}

# The suite's webhook receivers listen on 127.0.0.1; every other address is still refused (tests/test_outbound.py).
OUTBOUND_ALLOW_LOOPBACK = True

# The API throttles count nothing in the suite (a rate of None is no limit), so that the thousands of requests one
# user makes (schemathesis) are never refused; tests/api/test_throttles.py sets the rates it tests. The cache is
# local memory even with REDIS_URL, so that the processes of `make test` never share counts; the Redis test of the
# throttles sets its own. The sign-in lockout stays on: its counts are rows, rolled back with each test.
REST_FRAMEWORK = {
    **REST_FRAMEWORK,  # noqa: F405
    "DEFAULT_THROTTLE_RATES": dict.fromkeys(REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]),  # noqa: F405
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "handover-tests"}}
