"""Settings shared by every environment.

The environment is read here and nowhere else: every knob an operator can turn is an ``env(...)`` call in this
file (or in ``production.py`` for the ones that only matter there), with its default next to it.
"""

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env("SECRET_KEY", default="django-insecure-local-development-key-not-for-production")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Its lookups and its index expressions (OpClass in config.postgres.trigram_index); harmless on SQLite.
    "django.contrib.postgres",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc served from our static files, not a CDN
    "django_htmx",
    "axes",  # sign-in lockout: failed sign-ins and lockouts recorded, shown in the admin
    "operations",
    "projects",
    "handover",
]

MIDDLEWARE = [
    # First: every log line of a request, and its 500 page, carry the same reference (config/middleware.py).
    "config.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "config.middleware.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # After the static files, before anything that reads the database (the session): a request beyond this
    # process's capacity is answered 503 at once (config/middleware.py).
    "config.middleware.LoadSheddingMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "config.middleware.WebEdgesMiddleware",
    # Last: turns a sign-in that axes refused into the lockout page (config/lockout.py).
    "axes.middleware.AxesMiddleware",
]
CSRF_FAILURE_VIEW = "config.middleware.csrf_failure"

# Content-Security-Policy (django-csp): everything from this origin, nothing inline, no eval. htmx reads its
# configuration from a <meta> tag and injects no style; the page's behaviour is in config/static/js/. Only /api/docs/
# adds img-src data: (Swagger UI draws its icons as data: images; config/urls.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
# Permissions-Policy (config.middleware.PermissionsPolicyMiddleware): browser features this product never uses,
# each switched off for this page and anything it embeds.
PERMISSIONS_POLICY = [
    "accelerometer",
    "autoplay",
    "camera",
    "display-capture",
    "geolocation",
    "gyroscope",
    "magnetometer",
    "microphone",
    "midi",
    "payment",
    "publickey-credentials-get",
    "screen-wake-lock",
    "serial",
    "usb",
    "xr-spatial-tracking",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "config" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "handover.context_processors.navigation",
            ],
        },
    },
]

# An embedded SQLite file by default so that `make run` needs no server; DATABASE_URL switches to PostgreSQL.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'handover.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
_SQLITE = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
if _SQLITE:
    # WAL lets the web process read while the worker writes; the busy timeout waits for a lock instead of failing.
    # Transactions take the write lock when they begin (IMMEDIATE): a DEFERRED transaction that reads and then
    # writes cannot wait for a lock another process took meanwhile, and fails at once with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # No JIT compilation: the pages' short queries over large tables cross its cost threshold and spent 100-160 ms
    # compiling plans that run in a few ms (docs/benchmarks.md). A DATABASE_URL with ?options= keeps its own.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("options", "-c jit=off")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Load shedding (config.middleware.LoadSheddingMiddleware; sizing in the README, figures in docs/benchmarks.md) --
# Requests one web process serves at once (0: no limit); as many more wait up to REQUEST_QUEUE_TIMEOUT seconds for
# a slot, any other is answered 503 with Retry-After. gunicorn's WEB_THREADS must stay above twice it
# (config/gunicorn.py). Off by default on SQLite (make run): its writers take turns on the file's one lock and wait
# for it up to its timeout, so a limit there would refuse what waiting would have served.
MAX_CONCURRENT_REQUESTS = env.int("MAX_CONCURRENT_REQUESTS", default=0 if _SQLITE else 2)
REQUEST_QUEUE_TIMEOUT = env.float("REQUEST_QUEUE_TIMEOUT", default=0.1)
# Behind a proxy that stamps X-Request-Start: a request older than this many seconds is refused (0: not checked).
REQUEST_MAX_AGE = env.float("REQUEST_MAX_AGE", default=0)
LOAD_SHEDDING_RETRY_AFTER = 2
LOAD_SHEDDING_EXEMPT = ["/healthz"]

REDIS_URL = env("REDIS_URL", default="")

# The cache holds the API throttles' counts: Redis when REDIS_URL is set, so that every process counts together;
# otherwise local memory, where each process counts on its own (`make run` serves two gunicorn workers without Redis,
# so there a rate is in effect twice as high).
# Short timeouts: while Redis is unreachable the API answers unthrottled (config.throttling) rather than hanging.
CACHES: dict[str, dict[str, Any]] = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "handover",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "handover"}
    )
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# The web UI's own sign-in page (Django's auth views with the templates in config/templates/registration/).
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- Sign-in lockout (django-axes, config/lockout.py) --------------------------------------------------------------
# LOGIN_FAILURE_LIMIT failed sign-ins for one username, or from one address, within LOGIN_COOLOFF_MINUTES lock that
# username, or that address, until the cool-off has passed; the web UI's sign-in and the admin's alike.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out sign-in before any password is checked
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one reaching the limit locks
# Attempts while locked neither count nor push the end of the lockout further: the page can say when it ends.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_HANDLER = "config.lockout.LockoutHandler"
AXES_LOCKOUT_CALLABLE = "config.lockout.lockout_response"
AXES_ENABLE_ACCESS_FAILURE_LOG = True
# The same client address as the API throttles (config.throttling.client_ip), proxies included.
AXES_CLIENT_IP_CALLABLE = "config.throttling.client_ip"
# Reverse proxies in front of the app that append the client's address to X-Forwarded-For (0: REMOTE_ADDR is the
# client). Set it to exactly the number of proxies: more would let clients choose the address they are counted by.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

LANGUAGE_CODE = "en-gb"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# The web UI's stylesheet and icon; htmx comes from django-htmx's own static files. Nothing is fetched at run time.
STATICFILES_DIRS = [BASE_DIR / "config" / "static"]
STATIC_ROOT: Path | None = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

EMAIL_CONFIG = env.email("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
# A hung SMTP server must fail the send (one attempt, retried later), well inside the task's soft time limit,
# instead of holding the worker until the hard limit kills it.
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Handover <handover@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # [request_id]: the reference a 500 page shows (config/request_id.py), "-" outside a request.
    "filters": {"request_id": {"()": "config.request_id.RequestIdFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["request_id"]}},
    # Django logs a request's traceback here: the record itself carries the reference, whichever handler reads it.
    "loggers": {"django.request": {"filters": ["request_id"]}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}

# The portfolio board: at most this many cards per stage column (the most urgent first, then "n more" into the
# projects list), and closed or cancelled projects only from this many days back unless ?closed=all.
HANDOVER_BOARD_COLUMN_CAP = env.int("BOARD_COLUMN_CAP", default=12)
HANDOVER_BOARD_RECENT_DAYS = env.int("BOARD_RECENT_DAYS", default=90)

# Stall rules (docs/domain.md "Stalled handovers"): days before each rule fires. An operations team may override any of
# them; these are the defaults, each overridable from the environment.
HANDOVER_STALL_THRESHOLDS = {
    "idle": env.int("STALL_IDLE_DAYS", default=7),
    "review_overdue": env.int("STALL_REVIEW_OVERDUE_DAYS", default=3),
    "verification_waiting": env.int("STALL_VERIFICATION_WAITING_DAYS", default=5),
    "past_target": env.int("STALL_PAST_TARGET_DAYS", default=0),
    "conditions_overdue": env.int("STALL_CONDITIONS_OVERDUE_DAYS", default=0),
    "adoption_below_target": env.int("STALL_ADOPTION_BELOW_TARGET_DAYS", default=0),
}
HANDOVER_ESCALATION_DAYS = env.int("STALL_ESCALATION_DAYS", default=3)


def _rate(name: str, default: str) -> str | None:
    """A throttle rate from the environment, ``<requests>/<second|minute|hour|day>``; empty: no limit."""
    value = env(name, default=default).strip()
    if not value:
        return None
    if not re.fullmatch(r"\d+/(s|sec|second|m|min|minute|h|hour|d|day)", value):
        raise ImproperlyConfigured(f"{name} must be a rate such as 100/minute (per second, minute, hour or day).")
    return value


REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # The token scheme first, so that a request without credentials gets 401 with WWW-Authenticate.
        "handover.tokens.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "handover.tokens.authentication.ReadOnlyTokenPermission",
    ],
    "DEFAULT_PAGINATION_CLASS": "config.api.Pagination",
    # Strict versions of django-filter's, DRF's search and ordering: a parameter a list does not take, or a value it
    # cannot use, is a 400 naming it rather than silently ignored.
    "DEFAULT_FILTER_BACKENDS": [
        "config.api.FilterBackend",
        "config.api.SearchFilter",
        "config.api.OrderingFilter",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "config.api_parsers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["config.api_parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "config.api_schema.ApiSchema",  # documents the lists that also page by cursor
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    # Beyond a rate: 429 with Retry-After (config/throttling.py; the README's Configuration lists the variables).
    "DEFAULT_THROTTLE_CLASSES": [
        "config.throttling.AnonThrottle",
        "config.throttling.UserThrottle",
        "config.throttling.TokenThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": _rate("API_RATE_ANON", "60/minute"),
        "user": _rate("API_RATE_USER", "600/minute"),
        "token": _rate("API_RATE_TOKEN", "300/minute"),
        # Counted by handover.tokens.authentication, before the others run.
        "auth_failure": _rate("API_RATE_AUTH_FAILURES", "30/minute"),
    },
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Handover API",
    "DESCRIPTION": (
        "Everything a person can do in Handover, for other tools: projects and their stages, handovers and their "
        "checklists, operations teams, services and KPIs. Authenticate with `Authorization: Bearer <token>` "
        '(create one at `/api/v1/tokens/`). Errors share one shape: `{"error": {status, code, message, fields}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "StageEnum": "projects.choices.Stage",
        "ProjectEventKindEnum": "projects.choices.ProjectEventKind",
        "TemplateKindEnum": "handover.choices.TemplateKind",
        "HandoverStatusEnum": "handover.choices.HandoverStatus",
        "ItemStatusEnum": "handover.choices.ItemStatus",
        "RiskEnum": "handover.choices.Risk",
        "SideEnum": "handover.choices.Side",
        "DecisionKindEnum": "handover.choices.DecisionKind",
        "ConditionStatusEnum": "handover.choices.ConditionStatus",
        "ActivityVerbEnum": "handover.choices.ActivityVerb",
        "KpiDirectionEnum": "operations.choices.KpiDirection",
    },
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Every operation may answer 429 with Retry-After (config/throttling.py); the first is drf-spectacular's default.
    # config.api.postprocess_schema: what the API refuses that drf-spectacular cannot see (unknown fields, NUL
    # characters, blank text) and the other errors every operation can answer (406, 414, 415).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.throttling.document_throttling",
        "config.api.postprocess_schema",
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Background jobs -------------------------------------------------------------------------------------------
# Redis when REDIS_URL is set; otherwise kombu's filesystem transport under var/, which needs no server yet runs a
# real worker and a real beat in their own processes (what `make run` uses).
CELERY_BROKER_DIR = VAR_DIR / "celery"
REDIS_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {
    # Every countdown and retry backoff below stays far under this, so Redis never redelivers a task that is
    # merely waiting (celery/kombu#337: long countdowns with Redis cause duplicate runs).
    "visibility_timeout": 3600,
    # The worker's and beat's connections. socket_timeout must stay above kombu's 1 s BRPOP timeout, or an idle
    # consumer would time out on every poll; the outbox publishes with the tighter OUTBOX_PUBLISH_* below.
    "socket_connect_timeout": 1,
    "socket_timeout": 5,
    # How often a publisher retries connecting. Any retry first sleeps kombu's interval_start (2 s), so a request
    # that enqueues while Redis is down would hang >2 s per task; one try, then the outbox sweep catches up. The
    # worker's own reconnect loop is governed by CELERY_BROKER_CONNECTION_MAX_RETRIES, not by this.
    "max_retries": 0,
}
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = REDIS_BROKER_TRANSPORT_OPTIONS
else:
    CELERY_BROKER_URL = "filesystem://localhost//"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "store_processed": False,
        "control_folder": str(CELERY_BROKER_DIR / "control"),
    }
CELERY_BROKER_CONNECTION_TIMEOUT = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = env.int("CELERY_BROKER_CONNECTION_MAX_RETRIES", default=None)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 90
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Publishing must never hold up a request: one quick try, then the database outbox and the sweep take over.
CELERY_TASK_PUBLISH_RETRY = False
CELERY_TIMEZONE = TIME_ZONE
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

STALL_DETECT_INTERVAL = env.int("STALL_DETECT_INTERVAL", default=300)
OUTBOX_SWEEP_INTERVAL = env.int("OUTBOX_SWEEP_INTERVAL", default=60)
CELERY_BEAT_SCHEDULE = {
    "detect-stalls": {
        "task": "handover.tasks.detect_stalls",
        "schedule": STALL_DETECT_INTERVAL,
        # A pass that could not start before the next one is due is dropped, not queued behind it.
        "options": {"expires": STALL_DETECT_INTERVAL * 0.8},
    },
    "sweep-outbox": {
        "task": "handover.tasks.sweep_outbox",
        "schedule": OUTBOX_SWEEP_INTERVAL,
        "options": {"expires": OUTBOX_SWEEP_INTERVAL * 0.8},
    },
    # The projects app knows nothing of webhooks: its stage moves are read like a change feed and become events.
    "publish-project-events": {
        "task": "handover.tasks.publish_project_events",
        "schedule": OUTBOX_SWEEP_INTERVAL,
        "options": {"expires": OUTBOX_SWEEP_INTERVAL * 0.8},
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# Publishing from the outbox (after a request's commit, and from the sweep): one connection per transaction with
# tight timeouts, so a hung or blackholed Redis costs a request at most about a second, once. After a failure the
# process stops trying for OUTBOX_PUBLISH_BREAKER seconds; the rows wait in the database for the sweep.
OUTBOX_PUBLISH_TIMEOUT = env.float("OUTBOX_PUBLISH_TIMEOUT", default=0.5)
OUTBOX_PUBLISH_BREAKER = env.float("OUTBOX_PUBLISH_BREAKER", default=30.0)
# A due row whose send task was published this long ago and still not claimed is published again (a lost message).
OUTBOX_REQUEUE_AFTER = env.int("OUTBOX_REQUEUE_AFTER", default=300)

# Sending: how often a notification or webhook is tried, and how long between tries (capped, with jitter).
OUTBOX_MAX_ATTEMPTS = env.int("OUTBOX_MAX_ATTEMPTS", default=8)
OUTBOX_BACKOFF_BASE = env.int("OUTBOX_BACKOFF_BASE", default=30)
OUTBOX_BACKOFF_MAX = env.int("OUTBOX_BACKOFF_MAX", default=900)
WEBHOOK_TIMEOUT = env.float("WEBHOOK_TIMEOUT", default=5.0)
# The outbound guard (config/outbound.py): webhooks and every other outbound HTTP call go only to public addresses,
# checked when a URL is saved and again, after DNS resolution, before each connection. Loopback is allowed only for
# development and tests; production calls https only.
OUTBOUND_ALLOW_LOOPBACK = env.bool("OUTBOUND_ALLOW_LOOPBACK", default=False)
OUTBOUND_HTTPS_ONLY = env.bool("OUTBOUND_HTTPS_ONLY", default=False)
# Links in emails and webhook payloads. `make run` passes the web port as HANDOVER_PORT (honcho gives every process
# its own PORT, so PORT is only trusted when HANDOVER_PORT is unset).
SITE_URL = env("SITE_URL", default=f"http://127.0.0.1:{env('HANDOVER_PORT', default=env('PORT', default='8000'))}")
