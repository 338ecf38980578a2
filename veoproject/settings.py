"""One settings module, read from the environment (see README "Configuration")."""

from __future__ import annotations

import ipaddress
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

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
    "notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Every page gets CONTENT_SECURITY_POLICY (below); media views set their own.
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language: the switcher's cookie, else the browser's Accept-Language.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # A logged-in user's stored language wins over the cookie's (veoproject/languages.py).
    "veoproject.languages.UserLanguageMiddleware",
    # Times on pages in the user's time zone; the API stays in UTC (accounts/time_zones.py).
    "accounts.middleware.TimeZoneMiddleware",
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
    # DATABASE_POOL=N (N > 0): the web processes keep a psycopg pool of up to N connections
    # and no per-request health-check query. Never in qcluster: it forks its workers, which
    # breaks a pool (django-q2 trap), so there persistent connections + health checks.
    DATABASE_POOL = 0 if "qcluster" in sys.argv else env.int("DATABASE_POOL", default=0)
    if DATABASE_POOL > 0:
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": min(2, DATABASE_POOL),
            "max_size": DATABASE_POOL,
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
        }
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django requires it with a pool
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
    else:
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
    # Sessions read from Redis, written through to the database (they survive a flush).
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
else:
    # Shared by web and worker processes (throttles, django-q2 stats); LocMem is per process.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "django_cache",
        }
    }
# The active prices and blocked terms are kept this many seconds in each process
# (veoproject/local_cache.py): a staff change applies at once in the process that saved
# it and within this long everywhere else. 0: read them on every request.
LOCAL_CACHE_SECONDS = env.float("LOCAL_CACHE_SECONDS", default=5.0)

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
# A worker submitting a generation, copying its video or running the sweep chain holds a
# lease this long and renews it every quarter of it while it works (generations/leases.py):
# a SIGKILLed worker's work is taken over by the next sweep within about this long.
WORKER_LEASE_SECONDS = max(env.int("WORKER_LEASE_SECONDS", default=20), 4)
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
    # Django's ModelBackend plus login by email address (allauth, below).
    "allauth.account.auth_backends.AuthenticationBackend",
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
# One account, one count, whether it logs in by username (portal, admin) or by email.
AXES_USERNAME_CALLABLE = "accounts.limits.login_username"
AXES_LOCKOUT_CALLABLE = "accounts.views.login_locked_out"
# Failures are kept (and shown in the admin); successful logins are not, as that table
# would only grow.
AXES_DISABLE_ACCESS_LOG = True
AXES_VERBOSE = False  # no banner at every start; lockouts log event=login_locked_out

# --- Accounts (django-allauth) ----------------------------------------------------------
# Signup, login, logout, passwords, email verification, social login and TOTP at /accounts/
# (README "Accounts"). The rules of our own live in accounts/adapters.py: signup credits
# only for a verified address, once per address in any letter case.
INSTALLED_APPS += [
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.github",
    "allauth.socialaccount.providers.google",
    "allauth.mfa",
]
# After AuthenticationMiddleware (allauth's login stages need the user); the staff
# two-factor gate after it, before axes (which stays last).
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
    "allauth.account.middleware.AccountMiddleware",
)
MIDDLEWARE.insert(
    MIDDLEWARE.index("axes.middleware.AxesMiddleware"), "accounts.middleware.StaffMFAMiddleware"
)
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_FORMS = {
    "login": "accounts.forms.LoginForm",
    "signup": "accounts.forms.SignupForm",
    "reset_password": "accounts.forms.PasswordResetForm",
    "reset_password_from_key": "accounts.forms.PasswordResetKeyForm",
    "change_password": "accounts.forms.PasswordChangeForm",
}
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
# mandatory: no login (and no signup credits) before the address is confirmed; optional:
# login at once, credits once confirmed; none: credits at signup (closed installations).
ACCOUNT_EMAIL_VERIFICATION = env.str("ACCOUNT_EMAIL_VERIFICATION", default="mandatory").lower()
if ACCOUNT_EMAIL_VERIFICATION not in ("mandatory", "optional", "none"):
    raise ImproperlyConfigured("ACCOUNT_EMAIL_VERIFICATION must be mandatory, optional or none.")
ACCOUNT_CONFIRM_EMAIL_ON_GET = False  # a link preview or a mail scanner confirms nothing
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
# A reset asked for an address without an account sends nothing (not even "no account
# here"): the page answers the same either way, and nobody's inbox is ours to fill.
ACCOUNT_EMAIL_UNKNOWN_ACCOUNTS = False
ACCOUNT_EMAIL_SUBJECT_PREFIX = ""  # our subjects name the site (templates/account/email/)
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "http" if DEBUG else "https"
ACCOUNT_LOGOUT_REDIRECT_URL = LOGOUT_REDIRECT_URL


def _allauth_rate(rate: str, per: str) -> str:
    """Our rates ("5/hour", "20/min") in allauth's spelling ("5/h/ip"); empty stays empty."""
    count, _, period = rate.strip().partition("/")
    if not count:
        return ""
    unit = period.strip().lower()[:1]
    if unit not in ("s", "m", "h", "d"):
        raise ImproperlyConfigured(f"Bad rate {rate!r}: write it as e.g. 5/hour.")
    return f"{int(count)}/{unit}/{per}"


# allauth's limits answer with our 429 page (accounts.views.rate_limited). Failed logins
# are counted by django-axes, which decides (one count for the portal and the admin, a
# fixed pause: "Abuse limits" above); allauth's own count of failures per address and per
# login name is a backstop at twice those numbers, so it never cuts axes's pause short or
# stretches it. Reset emails per target address are limited silently by accounts.limits
# (the page must answer as for any address); allauth limits the client.
ACCOUNT_RATE_LIMITS = {
    "login_failed": (
        f"{2 * LOGIN_ADDRESS_FAILURE_LIMIT}/{LOGIN_LOCKOUT_MINUTES}m/ip,"
        f"{2 * LOGIN_FAILURE_LIMIT}/{LOGIN_LOCKOUT_MINUTES}m/key"
    ),
    "login": "30/m/ip",
    "signup": _allauth_rate(SIGNUP_RATE, "ip"),
    "reset_password": _allauth_rate(PASSWORD_RESET_CLIENT_RATE, "ip"),
    "reset_password_from_key": "20/m/ip",
    # A new confirmation email to one address at most every 3 minutes.
    "confirm_email": "1/3m/key",
}
# Social login: a provider is offered (a button on the login and signup pages) only when
# its client id and secret are set; configured here, no database row needed.
SOCIALACCOUNT_PROVIDERS: dict[str, dict] = {}
for _provider, _scope in (("google", ["profile", "email"]), ("github", ["user:email"])):
    _client_id = env.str(f"{_provider.upper()}_CLIENT_ID", default="")
    _secret = env.str(f"{_provider.upper()}_CLIENT_SECRET", default="")
    if _client_id and _secret:
        SOCIALACCOUNT_PROVIDERS[_provider] = {
            "APPS": [{"client_id": _client_id, "secret": _secret, "key": ""}],
            "SCOPE": _scope,
        }
SOCIALACCOUNT_LOGIN_ON_GET = False  # the button POSTs (no login CSRF through a link)
# Two-factor: TOTP apps plus recovery codes. STAFF_REQUIRE_MFA: staff without TOTP are sent
# to set it up before the admin opens (accounts.middleware.StaffMFAMiddleware).
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Veo Studio"
STAFF_REQUIRE_MFA = env.bool("STAFF_REQUIRE_MFA", default=False)

# --- I18N -------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
# The portal's languages (README "Languages"); the catalogues are in locale/, compiled to
# .mo files by `compilemessages` (make run / make test do it).
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
LOCALE_PATHS = [BASE_DIR / "locale"]
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

# --- Storage ----------------------------------------------------------------------------
# STORAGE=s3: uploaded images and copied videos in a private bucket (django-storages over
# boto3; AWS, Cloudflare R2, MinIO: AWS_S3_ENDPOINT_URL), under django-storages' own
# setting names. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are read from the environment
# by django-storages (unset: boto3's chain, e.g. an instance role). Objects get no ACL (the
# bucket's private default); downloads redirect to URLs signed for AWS_QUERYSTRING_EXPIRE
# seconds, after Django's access check (generations/media.py, veoproject/storage.py).
STORAGE = env.str("STORAGE", default="local").strip().lower()
if STORAGE not in ("local", "s3"):
    raise ImproperlyConfigured("STORAGE is local (MEDIA_ROOT, the default) or s3.")
# Where the portal's <video> and <img> follow those redirects (the CSP below allows them).
MEDIA_STORAGE_ORIGINS: list[str] = []
if STORAGE == "s3":
    from veoproject.storage import bucket_origins, client_config, transfer_config

    AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
    if not AWS_STORAGE_BUCKET_NAME:
        raise ImproperlyConfigured("STORAGE=s3 needs AWS_STORAGE_BUCKET_NAME.")
    AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", default="") or None
    AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", default="") or None
    # MinIO and some others want path-style URLs (`path`); unset, boto3 chooses.
    AWS_S3_ADDRESSING_STYLE = env.str("AWS_S3_ADDRESSING_STYLE", default="") or None
    AWS_DEFAULT_ACL = None  # never public-read: the bucket's policy decides, private
    AWS_QUERYSTRING_AUTH = True
    AWS_QUERYSTRING_EXPIRE = env.int("AWS_QUERYSTRING_EXPIRE", default=300)
    AWS_S3_FILE_OVERWRITE = True  # our names are unique (the generation's id): no HEAD first
    AWS_S3_CLIENT_CONFIG = client_config(addressing_style=AWS_S3_ADDRESSING_STYLE)
    AWS_S3_TRANSFER_CONFIG = transfer_config()
    STORAGES["default"] = {"BACKEND": "storages.backends.s3.S3Storage"}
    MEDIA_STORAGE_ORIGINS = bucket_origins(AWS_S3_ENDPOINT_URL)

FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_MEMORY_SIZE = 26_214_400
# First: no byte of an upload past IMAGE_MAX_BYTES reaches memory or disk.
FILE_UPLOAD_HANDLERS = [
    "veoproject.uploads.ImageSizeLimitUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# Media serving (generations/media.py). Django always checks access; by default it then
# streams the file itself (with HTTP Range, ETag, Last-Modified). MEDIA_ACCEL=nginx hands
# the bytes to nginx with X-Accel-Redirect to MEDIA_ACCEL_PREFIX + the stored name, an
# `internal` location aliased to MEDIA_ROOT (README, "Serving videos with nginx").
MEDIA_ACCEL = env.str("MEDIA_ACCEL", default="").strip().lower()
if MEDIA_ACCEL not in ("", "nginx"):
    raise ImproperlyConfigured("MEDIA_ACCEL is either empty (Django serves media) or nginx.")
MEDIA_ACCEL_PREFIX = f"/{env.str('MEDIA_ACCEL_PREFIX', default='protected-media').strip('/')}/"

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
        "img-src": [csp.SELF, "data:", "blob:", "https:", *MEDIA_STORAGE_ORIGINS],
        "media-src": [csp.SELF, *MEDIA_STORAGE_ORIGINS],
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

# --- Email (README "Emails") --------------------------------------------------------------
# EMAIL_URL sets the backend and the SMTP server in one variable (smtp://user:pass@host:587/
# ?tls=True, smtp+ssl://host:465, consolemail://, filemail:////abs/path); a separate
# variable, when also set, overrides its part. Without either: the console with DEBUG on,
# SMTP on localhost:25 otherwise. Links in emails start with PUBLIC_BASE_URL.
_email_url = env.str("EMAIL_URL", default="").strip()
_email = environ.Env.email_url_config(_email_url) if _email_url else {}
_email_options = {**_email.get("OPTIONS", {})}


def _email_url_flag(name: str) -> bool:
    """`?tls=True` / `?ssl=1` of EMAIL_URL (django-environ keeps these as strings), or
    what its scheme says (smtps, smtp+tls, smtp+ssl)."""
    raw = _email_options.pop(name, _email.get(f"EMAIL_USE_{name}", False))
    return str(raw).strip().lower() in ("1", "true", "yes", "on")


EMAIL_BACKEND = env.str(
    "EMAIL_BACKEND",
    default=_email.get("EMAIL_BACKEND")
    or (
        "django.core.mail.backends.console.EmailBackend"
        if DEBUG
        else "django.core.mail.backends.smtp.EmailBackend"
    ),
)
EMAIL_HOST = env.str("EMAIL_HOST", default=_email.get("EMAIL_HOST") or "localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=_email.get("EMAIL_PORT") or 25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default=_email.get("EMAIL_HOST_USER") or "")
EMAIL_HOST_PASSWORD = env.str(
    "EMAIL_HOST_PASSWORD", default=_email.get("EMAIL_HOST_PASSWORD") or ""
)
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=_email_url_flag("TLS"))
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=_email_url_flag("SSL"))
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("Set EMAIL_USE_TLS (STARTTLS, port 587) or EMAIL_USE_SSL, not both.")
if _email_options:
    raise ImproperlyConfigured(
        f"EMAIL_URL: unknown option(s) {', '.join(sorted(_email_options))}; it takes tls and ssl."
    )
# A whole SMTP conversation stays well within a task's timeout (Q_CLUSTER["timeout"]).
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=20)
# The file backend's folder (EMAIL_BACKEND=django.core.mail.backends.filebased.EmailBackend).
EMAIL_FILE_PATH = env.str(
    "EMAIL_FILE_PATH", default=_email.get("EMAIL_FILE_PATH") or str(DATA_DIR / "emails")
)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="veo@localhost")

# --- Product settings -------------------------------------------------------------------
SIGNUP_CREDITS = env.int("SIGNUP_CREDITS", default=0)
# The site's public address: a scheme and a host (and port), nothing more; our paths are
# appended to it (veoproject/site_urls.py). A value without a scheme, or with a path, a
# query or credentials, would make every link in emails and every URL handed to fal wrong.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="").strip().rstrip("/")
if PUBLIC_BASE_URL:
    _public = urlsplit(PUBLIC_BASE_URL)
    if (
        _public.scheme not in ("http", "https")
        or not _public.hostname
        or _public.path
        or _public.query
        or _public.fragment
        or "@" in _public.netloc
    ):
        raise ImproperlyConfigured(
            f"PUBLIC_BASE_URL is the site's address, e.g. https://veo.example.com, not "
            f"{PUBLIC_BASE_URL!r}: a scheme (https or http) and a host, no path or query."
        )
API_CREATE_RATE = env.str("API_CREATE_RATE", default="30/min").strip() or None
API_READ_RATE = env.str("API_READ_RATE", default="600/min").strip() or None
VOUCHER_REDEEM_RATE = env.str("VOUCHER_REDEEM_RATE", default="10/hour").strip() or None
# Stripe Checkout Sessions one user may open (each is a Purchase row and a call to Stripe).
CHECKOUT_RATE = env.str("CHECKOUT_RATE", default="10/hour").strip() or None
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
# How many jobs our fal account runs at once (fal's per-account limit, 2 to 40). With a
# limit, accepted generations wait in our own queue (shown as `queued`) and are sent only
# while fewer than this many are at fal, the next chosen fairly across users
# (generations/fair_share.py). 0 or empty: no limit, every accept is sent at once.
FAL_MAX_CONCURRENCY = max(_optional_int("FAL_MAX_CONCURRENCY", 0), 0)
# The order of our queue: "fair" (deficit round robin across users, weighted by seconds of
# video and each user's share weight) or "fifo" (first accepted, first sent; for
# comparison, bench/fair_share.py).
FAL_QUEUE_POLICY = env.str("FAL_QUEUE_POLICY", default="fair").strip().lower() or "fair"
if FAL_QUEUE_POLICY not in ("fair", "fifo"):
    raise ImproperlyConfigured('FAL_QUEUE_POLICY is "fair" or "fifo".')
# Uploaded input images go to fal's storage, whose hosts fal-client hard-codes
# (https://rest.fal.ai, https://v3.fal.media). Leave these empty; they exist so the test
# suite's fake fal can stand in for that storage.
FAL_STORAGE_REST_URL = env.str("FAL_STORAGE_REST_URL", default="").rstrip("/")
FAL_STORAGE_CDN_URL = env.str("FAL_STORAGE_CDN_URL", default="").rstrip("/")
# How long a quote (POST /api/v1/generations/quote/, the studio's price box) binds its
# price; expired quotes are purged (generations/quotes.py).
QUOTE_TTL_SECONDS = env.int("QUOTE_TTL_SECONDS", default=600)
# A generation with no final answer after this long is reconciled and failed.
GENERATION_DEADLINE_SECONDS = env.int("GENERATION_DEADLINE_SECONDS", default=30 * 60)
# How long a video usually takes from being sent to being ready, when no similar video has
# finished lately (generations/estimates.py learns it from the recent ones otherwise).
GENERATION_TYPICAL_SECONDS = env.int("GENERATION_TYPICAL_SECONDS", default=120)
VIDEO_MAX_BYTES = env.int("VIDEO_MAX_BYTES", default=200 * 1024 * 1024)
IMAGE_MAX_BYTES = env.int("IMAGE_MAX_BYTES", default=10 * 1024 * 1024)
IMAGE_MAX_PIXELS = env.int("IMAGE_MAX_PIXELS", default=40_000_000)
# A request's `image_url` is fetched and checked by the worker before the submit (public
# address, size, decodes, minimum size: generations/services/submission.py), within this
# many seconds. Off only where workers cannot reach the internet but fal can (fal then
# fetches the URL unchecked), and in the unit tests, whose URLs do not exist.
IMAGE_URL_CHECK = env.bool("IMAGE_URL_CHECK", default=True)
IMAGE_URL_TIMEOUT_SECONDS = env.float("IMAGE_URL_TIMEOUT_SECONDS", default=20.0)
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

# --- Payments (Stripe) ----------------------------------------------------------------------
# Credit packs are sold through Stripe Checkout only when a secret key is set; credits are
# granted from Stripe's signed webhook (/webhooks/stripe/), verified with the endpoint's
# signing secret. STRIPE_API_BASE points the client elsewhere (tests, staging fakes).
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com").rstrip("/")
# Stripe's own default: a delivery signed longer ago than this is refused (replays).
STRIPE_WEBHOOK_TOLERANCE_SECONDS = 300
STRIPE_HTTP_TIMEOUT = env.float("STRIPE_HTTP_TIMEOUT", default=20.0)

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

# --- Metrics, logs and errors (README "Metrics and alerts") --------------------------------
# /metrics (veoproject/metrics/) is served only with `Authorization: Bearer <METRICS_TOKEN>`
# or to a client in METRICS_ALLOW (addresses or networks, comma-separated; the client is
# accounts.limits.client_address, so behind proxies set TRUSTED_PROXY_COUNT); neither set:
# 404. With PROMETHEUS_MULTIPROC_DIR (prometheus-client's own variable: an empty directory
# that every gunicorn and qcluster process shares) a scrape adds up all processes' counters.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOW = [entry.strip() for entry in env.list("METRICS_ALLOW", default=[]) if entry.strip()]
for _entry in METRICS_ALLOW:
    try:
        ipaddress.ip_network(_entry, strict=False)
    except ValueError:
        raise ImproperlyConfigured(f"METRICS_ALLOW: {_entry!r} is no address or network.") from None
# First: times every request, also those another middleware answers.
MIDDLEWARE.insert(0, "veoproject.metrics.RequestMetricsMiddleware")
# Scrapers talk to the app server directly, like load balancers to /healthz.
SECURE_REDIRECT_EXEMPT += [r"^metrics$"]
# LOG_FORMAT=json: one JSON object per line, the key=value pairs of the message as fields
# (veoproject/logging.py); text (the default): the line as written.
LOG_FORMAT = env.str("LOG_FORMAT", default="text").strip().lower()
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured("LOG_FORMAT is text (the default) or json.")
# Errors and unhandled exceptions to Sentry when set (sentry-sdk's Django integration; its
# own SENTRY_ENVIRONMENT and SENTRY_RELEASE variables apply). Unset: nothing is initialised.
SENTRY_DSN = env.str("SENTRY_DSN", default="")
SENTRY_TRACES_SAMPLE_RATE = env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0)
if SENTRY_DSN:
    from veoproject.logging import init_sentry

    init_sentry(dsn=SENTRY_DSN, traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE)

# --- Logging: one line per event, key=value, to stdout ------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "line": {"format": "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"},
        "json": {"()": "veoproject.logging.JsonFormatter"},
    },
    "filters": {"refused_host": {"()": "veoproject.logging.RefusedHostFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "line",
        }
    },
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
        # A Host header outside ALLOWED_HOSTS: a WARNING line, not an ERROR and traceback.
        "django.security.DisallowedHost": {"filters": ["refused_host"]},
    },
}
