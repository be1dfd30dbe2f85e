"""The settings of the real Celery worker that ``test_celery_integration`` starts: the development settings, on the
queue of the test process that started it (under pytest-xdist each test process has its own: tests/conftest.py)."""

import os

from config.settings.local import *  # noqa: F403

CELERY_TASK_DEFAULT_QUEUE = os.environ["HANDOVER_TEST_QUEUE"]
