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
