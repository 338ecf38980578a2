"""One settings module, read from the environment (see README "Configuration")."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import csp.constants as csp
import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()


def _optional_int(name: str, default: int) -> int:
    """An integer setting where `0` or an empty value means "no limit" (returned as 0)."""
    raw = env.str(name, default=str(default)).strip()
    return int(raw) if raw else 0


DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Set SECRET_KEY (or DEBUG=1 for a development key).")
    SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "axes",
    "accounts",
    "generations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Every page gets CONTENT_SECURITY_POLICY (below); media views set their own.
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Oversized or malformed bodies answer 413/400 before any view reads them.
    "veoproject.middleware.RequestLimitsMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: turns a locked-out login attempt into the lockout page (accounts/limits.py).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "veoproject.urls"
WSGI_APPLICATION = "veoproject.wsgi.application"
ASGI_APPLICATION = "veoproject.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "veoproject.context_processors.site",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
# Unset DATABASE_URL: a SQLite file beside the project. Any SQLite database (also one named
# by DATABASE_URL) gets the tuning a web process with a worker beside it needs: WAL so
# readers never wait for the writer, a busy timeout, and BEGIN IMMEDIATE so a transaction
# that reads then writes waits for the lock instead of failing with "database is locked".
DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "data")))
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    if DATABASES["default"]["NAME"] not in ("", ":memory:"):
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    # No psycopg pool: qcluster forks its workers (django-q2 trap); health checks instead.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

# --- Cache and task broker --------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        }
    }
else:
    # Shared by web and worker processes (throttles, django-q2 stats); LocMem is per process.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "django_cache",
        }
    }

Q_CLUSTER = {
    "name": "veoproject",
    "workers": env.int("Q_WORKERS", default=2),
    "queue_limit": env.int("Q_QUEUE_LIMIT", default=4),
    "bulk": 1,
    # Our tasks are bounded by short HTTP timeouts; retry (the ORM lease) must stay well
    # above timeout, or a slow task is redelivered and runs twice at once. How every fal
    # call (fal-client's own retries included) and a sweep pass fit well within this
    # timeout: generations/fal.py, "Time budget".
    "timeout": 90,
    "retry": 300,
    "max_attempts": 5,
    # Retries and backoff belong to the Generation state machine, not to blind redelivery.
    "ack_failures": True,
    "save_limit": 1000,
    "catch_up": False,
    "poll": 0.2,
    "recycle": 500,
    "max_rss": 400_000,
    "label": "Background tasks",
}
if REDIS_URL:
    Q_CLUSTER["django_redis"] = "default"
else:
    Q_CLUSTER["orm"] = "default"

# --- Auth -------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "studio"
LOGOUT_REDIRECT_URL = "login"

# --- Abuse limits (accounts/limits.py) ----------------------------------------------------
# Failed logins, portal and admin alike, are counted by django-axes through authenticate():
# an account is locked after LOGIN_FAILURE_LIMIT failures, an address after
# LOGIN_ADDRESS_FAILURE_LIMIT, until LOGIN_LOCKOUT_MINUTES have passed since the last one.
# API tokens never go through authenticate(): they are not affected.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_ADDRESS_FAILURE_LIMIT = env.int("LOGIN_ADDRESS_FAILURE_LIMIT", default=20)
LOGIN_LOCKOUT_MINUTES = max(env.int("LOGIN_LOCKOUT_MINUTES", default=15), 1)
# Per hour (or /min, /day); empty for no limit. Reset emails per target address and per
# client address; signups per client address.
PASSWORD_RESET_RATE = env.str("PASSWORD_RESET_RATE", default="3/hour")
PASSWORD_RESET_CLIENT_RATE = env.str("PASSWORD_RESET_CLIENT_RATE", default="20/hour")
SIGNUP_RATE = env.str("SIGNUP_RATE", default="5/hour")
# Reverse proxies in front of the app that append the client to X-Forwarded-For. 0: the
# header is ignored (any client can write it) and REMOTE_ADDR is the client.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses attempts while locked out
    "django.contrib.auth.backends.ModelBackend",
]
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each counted on its own
AXES_FAILURE_LIMIT = "accounts.limits.login_failure_limit"
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
# A fixed pause: attempts while locked out do not extend it (an attacker hammering a
# victim's account would keep the victim out forever).
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# Never: a success would wipe the address's failures too (log in to your own account to
# keep guessing at others).
AXES_RESET_ON_SUCCESS = False
AXES_CLIENT_IP_CALLABLE = "accounts.limits.client_address"
AXES_LOCKOUT_CALLABLE = "accounts.views.login_locked_out"
# Failures are kept (and shown in the admin); successful logins are not, as that table
# would only grow.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False  # no banner at every start; lockouts log event=login_locked_out

# --- I18N -------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static and media -------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(DATA_DIR / "media")))
# No MEDIA_URL is served: videos and images are private, served by views that check access.
MEDIA_URL = "/media-not-public/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_MEMORY_SIZE = 26_214_400
# First: no byte of an upload past IMAGE_MAX_BYTES reaches memory or disk.
FILE_UPLOAD_HANDLERS = [
    "veoproject.uploads.ImageSizeLimitUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# --- Security (manage.py check --deploy is clean when DEBUG is off) ---------------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# django-csp, on every page of the portal, the admin and the API docs. Scripts only from
# our own static files (no inline script, no eval, nothing from a CDN); inline style
# attributes stay allowed because the admin's own templates and widgets use them (a style
# cannot run code). Images may come from https: (a generation made from an image URL shows
# that image) and blob: (the studio's preview of the chosen file). Media responses carry
# their own `sandbox` policy (generations/media.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp.NONE],
        "script-src": [csp.SELF, csp.NONCE],
        "style-src": [csp.SELF, csp.NONCE],
        "style-src-attr": [csp.UNSAFE_INLINE],
        "img-src": [csp.SELF, "data:", "blob:", "https:"],
        "media-src": [csp.SELF],
        "font-src": [csp.SELF],
        "connect-src": [csp.SELF],
        "manifest-src": [csp.SELF],
        "object-src": [csp.NONE],
        "base-uri": [csp.NONE],
        "frame-ancestors": [csp.NONE],
    },
}
if env.bool("USE_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default="django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="veo@localhost")

# --- Product settings -------------------------------------------------------------------
SIGNUP_CREDITS = env.int("SIGNUP_CREDITS", default=0)
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="").rstrip("/")
API_CREATE_RATE = env.str("API_CREATE_RATE", default="30/min").strip() or None
API_READ_RATE = env.str("API_READ_RATE", default="600/min").strip() or None
VOUCHER_REDEEM_RATE = env.str("VOUCHER_REDEEM_RATE", default="10/hour").strip() or None
MAX_IN_FLIGHT_PER_USER = _optional_int("MAX_IN_FLIGHT_PER_USER", 5)

# fal.ai. Credentials as fal-client takes them: FAL_KEY, or FAL_KEY_ID + FAL_KEY_SECRET.
# Without them a simulated backend stands in (a banner says so), but only where it cannot
# fool anyone: with DEBUG on, or when FAL_SIMULATED=1 says so explicitly (see
# veoproject/checks.py: the web and the worker refuse to start otherwise).
FAL_KEY_ID = env.str("FAL_KEY_ID", default="")
FAL_KEY_SECRET = env.str("FAL_KEY_SECRET", default="")
FAL_KEY = env.str("FAL_KEY", default="") or (
    f"{FAL_KEY_ID}:{FAL_KEY_SECRET}" if FAL_KEY_ID and FAL_KEY_SECRET else ""
)
# FAL_SIMULATED=1 asks for the simulator explicitly (required with DEBUG off and no key).
FAL_SIMULATED_REQUESTED = env.bool("FAL_SIMULATED", default=False)
FAL_SIMULATED = FAL_SIMULATED_REQUESTED or not FAL_KEY
if not DEBUG and not FAL_KEY and not FAL_SIMULATED_REQUESTED:
    # A production site must never charge real users credits for the sample clip.
    raise ImproperlyConfigured(
        "No fal credentials: set FAL_KEY (or FAL_KEY_ID and FAL_KEY_SECRET), or set "
        "FAL_SIMULATED=1 to run the simulated backend on purpose."
    )
FAL_ENDPOINT = "fal-ai/veo3.1/image-to-video"
FAL_SIMULATED_QUEUE_SECONDS = env.float("FAL_SIMULATED_QUEUE_SECONDS", default=3.0)
FAL_SIMULATED_RUN_SECONDS = env.float("FAL_SIMULATED_RUN_SECONDS", default=8.0)
FAL_WEBHOOK_JWKS_URL = env.str(
    "FAL_WEBHOOK_JWKS_URL", default="https://rest.fal.ai/.well-known/jwks.json"
)
FAL_WEBHOOK_TOLERANCE_SECONDS = 300
# The whole fetch of fal's keys, in seconds: a webhook waits at most this long for them.
FAL_JWKS_TIMEOUT = env.float("FAL_JWKS_TIMEOUT", default=3.0)
# When set, webhooks signed for any other fal user id are refused (fal signs every
# customer's webhooks with the same keys). The first verified webhook logs the id it carried.
FAL_WEBHOOK_USER_ID = env.str("FAL_WEBHOOK_USER_ID", default="")
# The only hosts a finished video is copied from (fal's CDN); a host matches itself and its
# subdomains.
FAL_MEDIA_HOSTS = [
    host.strip().lower().rstrip(".")
    for host in env.list("FAL_MEDIA_HOSTS", default=["fal.media", "fal.run", "fal.ai"])
    if host.strip()
]
# Short per-attempt timeouts: fal-client would otherwise wait 120 s per attempt (each
# call's whole budget: generations/fal.py, "Time budget").
FAL_HTTP_TIMEOUT = env.float("FAL_HTTP_TIMEOUT", default=15.0)
# While fal refuses our account (dispatch paused), the first probe submit waits this many
# seconds; later ones wait as long as the pause has lasted, up to 10 minutes
# (generations/services/account.py). Shorter only for tests.
FAL_PROBE_MIN_SECONDS = env.float("FAL_PROBE_MIN_SECONDS", default=30.0)
# Uploaded input images go to fal's storage, whose hosts fal-client hard-codes
# (https://rest.fal.ai, https://v3.fal.media). Leave these empty; they exist so the test
# suite's fake fal can stand in for that storage.
FAL_STORAGE_REST_URL = env.str("FAL_STORAGE_REST_URL", default="").rstrip("/")
FAL_STORAGE_CDN_URL = env.str("FAL_STORAGE_CDN_URL", default="").rstrip("/")
# A generation with no final answer after this long is reconciled and failed.
GENERATION_DEADLINE_SECONDS = env.int("GENERATION_DEADLINE_SECONDS", default=30 * 60)
VIDEO_MAX_BYTES = env.int("VIDEO_MAX_BYTES", default=200 * 1024 * 1024)
IMAGE_MAX_BYTES = env.int("IMAGE_MAX_BYTES", default=10 * 1024 * 1024)
IMAGE_MAX_PIXELS = env.int("IMAGE_MAX_PIXELS", default=40_000_000)
PROMPT_MAX_CHARS = 2500
# Fetches and callbacks to loopback/private/reserved addresses are refused unless this is
# on (tests and closed networks). One rule for all: veoproject/public_urls.py.
PRIVATE_URLS_ALLOWED = env.bool("PRIVATE_URLS_ALLOWED", default=False)
# One deadline for a whole callback attempt (connect, send, answer), not per read.
CALLBACK_TIMEOUT_SECONDS = env.float("CALLBACK_TIMEOUT_SECONDS", default=15.0)
# Callback POSTs running at once across the cluster: the other workers stay free for work.
CALLBACK_CONCURRENCY = env.int("CALLBACK_CONCURRENCY", default=max(1, Q_CLUSTER["workers"] // 2))
# Callback POSTs one user may have running at once (the rest wait their turn).
CALLBACKS_PER_USER = env.int("CALLBACKS_PER_USER", default=1)
# /api/schema/ and /api/docs/ for anonymous visitors (a public API documents itself).
API_DOCS_PUBLIC = env.bool("API_DOCS_PUBLIC", default=True)

# --- REST framework -----------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "veoproject.exceptions.api_exception_handler",
    # No DEFAULT_THROTTLE_RATES: each throttle reads its own setting per request
    # (veoproject/throttles.py).
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Veo portal API",
    "DESCRIPTION": "Turn one image and a prompt into a video with Veo 3.1, paid in credits.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "AspectRatioEnum": "generations.models.AspectRatio",
        "DurationEnum": "generations.models.Duration",
        "ResolutionEnum": "generations.models.Resolution",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "veoproject.api_errors.add_error_headers",
    ],
    "TAGS": [
        {"name": "generations", "description": "Turn an image and a prompt into a video."},
        {"name": "account", "description": "Your account, credits and ledger."},
        {"name": "tokens", "description": "API tokens (managed from a browser session)."},
    ],
}

# --- Logging: one line per event, key=value, to stdout ------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "line": {"format": "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "line"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        # django-axes says "login failed" at INFO for every wrong password; its WARNING
        # lines (new failures, lockouts) stay.
        "axes": {"level": "WARNING"},
        # django-q2 logs every task at INFO; the sweep runs every second while work is in
        # flight, so keep its chatter for LOG_LEVEL_TASKS=INFO.
        "django-q": {"level": env.str("LOG_LEVEL_TASKS", default="WARNING")},
    },
}
