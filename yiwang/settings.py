"""yiwang settings: everything comes from environment variables (12-factor).

With no variables set, yiwang runs on its embedded default: a SQLite file and a SQLite
Celery broker under ``var/``. Production sets DATABASE_URL, CELERY_BROKER_URL, SECRET_KEY,
ALLOWED_HOSTS and DEBUG=0; see the configuration table in README.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("YIWANG_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env(name: str, default: str = "") -> str:
    """Read NAME, or the file named by NAME_FILE (for container secrets)."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        return Path(file_name).read_text(encoding="utf-8").strip()
    return os.environ.get(name, default)


def envbool(name: str, default: str = "0") -> bool:
    return env(name, default).strip().lower() in {"1", "true", "yes", "on"}


def envint(name: str, default: str) -> int:
    return int(env(name, default))


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


DEBUG = envbool("DEBUG", "1")
_DEV_SECRET = "dev-only-insecure-secret-key-change-me-in-production-0123456789"
SECRET_KEY = env("SECRET_KEY", _DEV_SECRET if DEBUG else "")
if not SECRET_KEY:
    raise RuntimeError("SECRET_KEY 必须在生产环境中设置 (SECRET_KEY must be set when DEBUG=0)")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "csp",
    "yiwang.core",
    "yiwang.org",
    "yiwang.workflow",
    "yiwang.notify",
    "yiwang.exchange",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "yiwang.core.audit.AuditContextMiddleware",
    # every /api/ path: NUL bytes, oversized and null bodies refused; Django's own error pages as JSON
    "yiwang.core.api_guard.ApiGuardMiddleware",
    # API-gateway calls (other systems, API key, JSON) skip the browser middleware below
    "yiwang.exchange.middleware.GatewayMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "yiwang.org.middleware.ActingPostMiddleware",
    "yiwang.org.middleware.AdminTwoFactorMiddleware",
    "yiwang.core.metering.UsageMiddleware",
    # axes last, as its documentation asks
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "yiwang.urls"
WSGI_APPLICATION = "yiwang.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "yiwang" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "yiwang.core.context_processors.shell",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------
DATABASE_URL = env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'yiwang.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=envint("DB_CONN_MAX_AGE", "60"))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            # WAL lets the web process and the Celery worker share the file.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
    DATABASES["default"].setdefault("TEST", {})["NAME"] = os.environ.get("YIWANG_TEST_SQLITE")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache ----------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "yiwang.core.cache.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- identity -------------------------------------------------------------------------
AUTH_USER_MODEL = "org.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "yiwang.org.backends.UsernameOrMobileBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "org:login"
LOGIN_REDIRECT_URL = "core:workbench"
LOGOUT_REDIRECT_URL = "org:login"

AXES_FAILURE_LIMIT = envint("AXES_FAILURE_LIMIT", "5")
AXES_COOLOFF_TIME = envint("AXES_COOLOFF_MINUTES", "30") / 60  # hours
# Failures count per resolved account (any spelling of a mobile number is one account) and
# per address; a success clears only that account's failures from that address (org/lockout.py).
AXES_HANDLER = "yiwang.org.lockout.LockoutHandler"
AXES_USERNAME_CALLABLE = "yiwang.org.lockout.lockout_username"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
YIWANG_LOGIN_IP_FAILURE_LIMIT = envint("YIWANG_LOGIN_IP_FAILURE_LIMIT", "20")
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "yiwang.org.views.locked_out"
AXES_USERNAME_FORM_FIELD = "username"
AXES_VERBOSE = False

# Single sign-on with the province's identity service (OIDC, org/oidc.py), beside the password:
# on when a client id and the endpoints (or a discovery URL) are set. Accounts are never created.
OIDC_RP_CLIENT_ID = env("OIDC_RP_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = env("OIDC_RP_CLIENT_SECRET", "")
OIDC_OP_DISCOVERY_URL = env("OIDC_OP_DISCOVERY_URL", "")  # …/.well-known/openid-configuration
OIDC_OP_AUTHORIZATION_ENDPOINT = env("OIDC_OP_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = env("OIDC_OP_TOKEN_ENDPOINT", "")
OIDC_OP_USER_ENDPOINT = env("OIDC_OP_USER_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = env("OIDC_OP_JWKS_ENDPOINT", "")
OIDC_RP_SIGN_ALGO = env("OIDC_RP_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = env("OIDC_RP_SCOPES", "openid profile phone")
OIDC_CREATE_USER = False
OIDC_USE_PKCE = True
OIDC_TIMEOUT = envint("OIDC_TIMEOUT", "10")
OIDC_AUTHENTICATION_CALLBACK_URL = "org:oidc_callback"
YIWANG_OIDC_ID_CLAIM = env("YIWANG_OIDC_ID_CLAIM", "id_number")  # the claim holding the 公民身份号码
YIWANG_OIDC_MOBILE_CLAIM = env("YIWANG_OIDC_MOBILE_CLAIM", "phone_number")
if OIDC_RP_CLIENT_ID:
    AUTHENTICATION_BACKENDS.append("yiwang.org.oidc.ProvincialOIDCBackend")

OTP_TOTP_ISSUER = env("OTP_TOTP_ISSUER", "yiwang 一网")
# Platform admins must pass TOTP; set to 0 only for a throwaway local demo.
YIWANG_ADMIN_2FA = envbool("YIWANG_ADMIN_2FA", "1")

# --- i18n -----------------------------------------------------------------------------
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "yiwang" / "locale"]
TIME_ZONE = env("TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

# --- static files ---------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(VAR_DIR / "media")))
STORAGES = {
    # attachments go through the storage API: YIWANG_MEDIA_STORAGE="storages.backends.s3.S3Storage" and
    # YIWANG_MEDIA_STORAGE_OPTIONS='{"bucket_name": …, "endpoint_url": …}' put them in S3-compatible storage
    "default": {
        "BACKEND": env("YIWANG_MEDIA_STORAGE", "django.core.files.storage.FileSystemStorage"),
        "OPTIONS": json.loads(env("YIWANG_MEDIA_STORAGE_OPTIONS", "{}")),
    },
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
YIWANG_ATTACHMENT_MAX_BYTES = envint("YIWANG_ATTACHMENT_MAX_BYTES", str(20 * 1024 * 1024))
YIWANG_ATTACHMENT_SCANNER = env("YIWANG_ATTACHMENT_SCANNER", "")  # dotted path: (file, name) -> "" or what was found

# --- security -------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = envint("SESSION_COOKIE_AGE", str(8 * 3600))
if not DEBUG:
    SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "1")
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", "31536000")
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", "1")

# Every script and style comes from our own static files: no inline script, no CDN.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

# --- API ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "yiwang.org.api_auth.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["yiwang.core.api_base.IsAuthenticatedScoped"],
    "DEFAULT_PAGINATION_CLASS": "yiwang.core.api_base.Pagination",
    "PAGE_SIZE": 20,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "yiwang.core.api_base.exception_handler",
    "DEFAULT_FILTER_BACKENDS": [],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "yiwang 一网 API",
    "DESCRIPTION": "区级一体化电子政务平台开放接口。浏览器使用会话认证；其他系统使用 API 密钥 "
    "(请求头 `Authorization: Api-Key <密钥>`)。错误统一为 "
    '`{"error": {"code", "message", "details"}}`。',
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}")
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", f"db+sqlite:///{VAR_DIR / 'celery-results.sqlite3'}")
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "audit-chain": {"task": "yiwang.core.tasks.audit_chain", "schedule": 5.0},
    "workflow-reminders": {"task": "yiwang.workflow.tasks.send_reminders", "schedule": 15 * 60.0},
    "notify-tick": {"task": "yiwang.notify.tasks.tick", "schedule": 5.0},
    "notify-purge": {"task": "yiwang.notify.tasks.purge", "schedule": 24 * 3600.0},
    "exchange-tick": {"task": "yiwang.exchange.tasks.tick", "schedule": 30.0},
    "exchange-daily": {"task": "yiwang.exchange.tasks.daily", "schedule": 3600.0},
}

# --- yiwang ---------------------------------------------------------------------------
# Usage counters are buffered in memory and written in one query at most this often.
YIWANG_USAGE_FLUSH_SECONDS = envint("YIWANG_USAGE_FLUSH_SECONDS", "30")
YIWANG_AUDIT_CHAIN_BATCH = envint("YIWANG_AUDIT_CHAIN_BATCH", "5000")

# SMS (notify). Gateways as JSON (see yiwang/notify/gateways/__init__.py); without it, the local
# fake gateway on 127.0.0.1:8925 that bin/demo starts. Test API keys only reach the fake one.
YIWANG_SMS_GATEWAYS = json.loads(env("YIWANG_SMS_GATEWAYS", "null"))
YIWANG_SMS_TEST_GATEWAY = env("YIWANG_SMS_TEST_GATEWAY", "fake")
YIWANG_SMS_FAILOVER = json.loads(env("YIWANG_SMS_FAILOVER", "null"))
YIWANG_SMS_CALLBACK_SECRET = env("YIWANG_SMS_CALLBACK_SECRET", "")  # signs status callbacks; SECRET_KEY if empty
YIWANG_SMS_RETENTION_DAYS = envint("YIWANG_SMS_RETENTION_DAYS", "180")

# Sharing and exchange. The e-gov office (电子政务办) reviews catalogue entries and answers
# access requests a provider left past the deadline; deadlines are in working days.
YIWANG_EGOV_UNIT = env("YIWANG_EGOV_UNIT", "BL-EGOV")
YIWANG_EXCHANGE_REPLY_DAYS = envint("YIWANG_EXCHANGE_REPLY_DAYS", "10")
YIWANG_EXCHANGE_DISPUTE_DAYS = envint("YIWANG_EXCHANGE_DISPUTE_DAYS", "5")
YIWANG_EXCHANGE_PER_MINUTE = envint("YIWANG_EXCHANGE_PER_MINUTE", "6000")  # per consumer system and resource
YIWANG_EXCHANGE_MAX_PAGE = envint("YIWANG_EXCHANGE_MAX_PAGE", "100")
YIWANG_EXCHANGE_GATEWAY_PATHS = ["/api/exchange/gateway/"]  # served past the browser middleware
# Each gateway process re-reads revocations and adds its calls to the shared rate counters
# this often (seconds), not on every call; the process that made a change sees it at once.
YIWANG_EXCHANGE_SYNC_SECONDS = float(env("YIWANG_EXCHANGE_SYNC_SECONDS", "0.2"))
# Seconds between writes of the gateway's per-day call counters (the audit entry is per call).
YIWANG_EXCHANGE_FLUSH_SECONDS = envint("YIWANG_EXCHANGE_FLUSH_SECONDS", "5")
# Webhooks (subscription pushes, SMS status callbacks) only reach public addresses; hosts listed
# here (comma-separated host names or IPs, e.g. intranet consumer systems) may be private.
YIWANG_WEBHOOK_ALLOWED_HOSTS = envlist("YIWANG_WEBHOOK_ALLOWED_HOSTS", "")

# Uploaded spreadsheets (core.spreadsheet): an .xlsx's zip directory is checked before parsing,
# then rows, columns and cells are bounded while streaming. A 1,000,000-row, 8-column sheet is
# about 400 MB of worksheet XML (compressed ~7:1); parts read whole (shared strings) are smaller.
YIWANG_SHEET_MAX_UNCOMPRESSED = envint("YIWANG_SHEET_MAX_UNCOMPRESSED_MB", "1024") << 20  # all parts
YIWANG_SHEET_MAX_PART = envint("YIWANG_SHEET_MAX_PART_MB", "128") << 20  # each part other than a worksheet
YIWANG_SHEET_MAX_RATIO = envint("YIWANG_SHEET_MAX_RATIO", "100")  # uncompressed : compressed, parts over 1 MB
YIWANG_SHEET_MAX_MEMBERS = envint("YIWANG_SHEET_MAX_MEMBERS", "1000")
YIWANG_SHEET_MAX_ROWS = envint("YIWANG_SHEET_MAX_ROWS", "1000000")  # data rows, unless an importer sets its own
YIWANG_SHEET_MAX_COLUMNS = envint("YIWANG_SHEET_MAX_COLUMNS", "256")
YIWANG_SHEET_MAX_CELL_CHARS = envint("YIWANG_SHEET_MAX_CELL_CHARS", "32767")  # Excel's own limit

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"jieba": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
