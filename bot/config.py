"""Settings from environment variables: the only place paperbot reads the environment."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Annotated, Any

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from recommender.sources import SOURCE_NAMES, arxiv_api, arxiv_rss, hf_daily

__all__ = ["ConfigError", "Settings", "load_settings"]

_CATEGORY = re.compile(r"^[a-z][a-z\-]*(\.[A-Za-z\-]+)?$")
_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
# A Redis Cluster is named by its own scheme or by `?cluster=1` (see recommender.connection).
REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")


class ConfigError(ValueError):
    """The environment holds an unusable value; the message is one line naming the variable."""


def _split_list(value: Any) -> Any:
    """`"a, b,,c"` -> `["a", "b", "c"]`; lists pass through."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _check_http_url(value: str | None) -> str | None:
    """Accept only absolute http(s) URLs (a typo here would otherwise fail at fetch time)."""
    if value is None:
        return None
    text = value.strip()
    if not re.match(r"^https?://[^\s/]+", text, re.IGNORECASE):
        raise ValueError(f"expected an http:// or https:// URL, got {text[:80]!r}")
    return text


def _default_data_dir() -> Path:
    """The per-user data directory (e.g. `~/.local/share/paperbot`)."""
    return Path(platformdirs.user_data_dir("paperbot", appauthor=False))


class Settings(BaseSettings):
    """Every setting of paperbot; each field is read from the environment variable it names."""

    model_config = SettingsConfigDict(
        case_sensitive=False,
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
        validate_default=True,
        hide_input_in_errors=True,
    )

    # -- storage ------------------------------------------------------------------------
    # A Redis URL may carry a password, so it is kept as a secret too.
    redis_url: SecretStr | None = Field(None, validation_alias="REDIS_URL")
    data_dir: Path = Field(default_factory=_default_data_dir, validation_alias="PAPERBOT_DATA_DIR")

    # -- ingest -------------------------------------------------------------------------
    sources: Annotated[list[str], NoDecode] = Field(
        default=["hf", "rss"], validation_alias="PAPERBOT_SOURCES"
    )
    ingest_interval_minutes: int = Field(60, validation_alias="PAPERBOT_INGEST_INTERVAL_MINUTES")
    categories: Annotated[list[str], NoDecode] = Field(
        default=["cs.LG", "cs.CL", "cs.AI"], validation_alias="PAPERBOT_CATEGORIES"
    )
    arxiv_query: str | None = Field(None, validation_alias="PAPERBOT_ARXIV_QUERY")
    jsonl_path: Path | None = Field(None, validation_alias="PAPERBOT_JSONL_PATH")
    hf_api_url: str = Field(hf_daily.DEFAULT_BASE_URL, validation_alias="HF_API_URL")
    arxiv_api_url: str = Field(arxiv_api.DEFAULT_BASE_URL, validation_alias="ARXIV_API_URL")
    arxiv_rss_url: str = Field(arxiv_rss.DEFAULT_BASE_URL, validation_alias="ARXIV_RSS_URL")
    http_timeout: float = Field(20.0, validation_alias="PAPERBOT_HTTP_TIMEOUT")
    embeddings: bool = Field(True, validation_alias="PAPERBOT_EMBEDDINGS")
    log_level: str = Field("INFO", validation_alias="PAPERBOT_LOG_LEVEL")
    # Training weight of each kind of feedback (a dislike is negative confidence).
    weight_like: float = Field(1.0, validation_alias="PAPERBOT_WEIGHT_LIKE")
    weight_save: float = Field(2.0, validation_alias="PAPERBOT_WEIGHT_SAVE")
    weight_dislike: float = Field(-1.0, validation_alias="PAPERBOT_WEIGHT_DISLIKE")

    # -- chat platforms -----------------------------------------------------------------
    slack_bot_token: SecretStr | None = Field(None, validation_alias="SLACK_BOT_TOKEN")
    slack_signing_secret: SecretStr | None = Field(None, validation_alias="SLACK_SIGNING_SECRET")
    slack_app_token: SecretStr | None = Field(None, validation_alias="SLACK_APP_TOKEN")
    slack_api_url: str = Field("https://slack.com/api/", validation_alias="SLACK_API_URL")
    # The install flow ("Add to Slack") for many workspaces, used when no bot token is set.
    slack_client_id: str | None = Field(None, validation_alias="SLACK_CLIENT_ID")
    slack_client_secret: SecretStr | None = Field(None, validation_alias="SLACK_CLIENT_SECRET")
    slack_redirect_uri: str | None = Field(None, validation_alias="SLACK_REDIRECT_URI")
    slack_uninstall_grace_days: int = Field(30, validation_alias="SLACK_UNINSTALL_GRACE_DAYS")
    http_host: str = Field("127.0.0.1", validation_alias="PAPERBOT_HTTP_HOST")
    http_port: int = Field(3000, validation_alias="PAPERBOT_HTTP_PORT")
    discord_token: SecretStr | None = Field(None, validation_alias="DISCORD_TOKEN")
    discord_api_url: str = Field("https://discord.com/api/v10", validation_alias="DISCORD_API_URL")
    discord_gateway_url: str | None = Field(None, validation_alias="DISCORD_GATEWAY_URL")
    # The task engine: empty = a Redis broker on paperbot's own Redis; amqp://… = RabbitMQ.
    broker_url: SecretStr | None = Field(None, validation_alias="PAPERBOT_BROKER_URL")
    worker_threads: int = Field(8, ge=1, le=256, validation_alias="PAPERBOT_WORKER_THREADS")
    # Times a failing job is retried (with backoff) before it goes to the dead-letter queue.
    job_retries: int = Field(5, ge=0, le=100, validation_alias="PAPERBOT_JOB_RETRIES")
    # Slack publishes no workspace-wide limit: messages per second paperbot allows itself.
    slack_workspace_rate: int = Field(
        8, ge=1, le=1000, validation_alias="PAPERBOT_SLACK_WORKSPACE_RATE"
    )
    discord_rate: int = Field(50, ge=1, le=1000, validation_alias="PAPERBOT_DISCORD_RATE")

    # -- the clock (scheduler role) -----------------------------------------------------
    # Seconds the scheduler lease lives without renewal: a standby process runs the
    # clock within this (plus a second) after the holder dies.
    lease_ttl: float = Field(30.0, validation_alias="PAPERBOT_LEASE_TTL")
    # Seconds between due jobs when a new holder takes over (never every ingest at once).
    clock_stagger_seconds: float = Field(10.0, validation_alias="PAPERBOT_CLOCK_STAGGER_SECONDS")

    # -- validation -----------------------------------------------------------------------

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        """`FOO=` in an env file means "use the default", not an empty string."""
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip())}
        return data

    @field_validator("data_dir", mode="before")
    @classmethod
    def _data_dir(cls, value: Any) -> Any:
        """`~` is expanded."""
        return Path(str(value)).expanduser()

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        """Catch a URL without a Redis scheme before it becomes a confusing connect error."""
        if value is not None:
            text = value.get_secret_value().strip()
            if not text.lower().startswith(REDIS_SCHEMES):
                # Never echo the value: it may hold a password.
                raise ValueError("expected a redis://, rediss://, unix:// or redis+cluster:// URL")
            return SecretStr(text)
        return value

    @field_validator("sources", mode="before")
    @classmethod
    def _sources_list(cls, value: Any) -> Any:
        """Comma-separated names, lower-cased."""
        value = _split_list(value)
        if isinstance(value, list):
            return [str(v).strip().lower() for v in value]
        return value

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, value: list[str]) -> list[str]:
        """Every name must be a known source; duplicates are dropped."""
        expected = f"expected a comma list of {', '.join(SOURCE_NAMES)}"
        unknown = [name for name in value if name not in SOURCE_NAMES]
        if unknown:
            raise ValueError(f"unknown source {unknown[0]!r} ({expected})")
        if not value:
            raise ValueError(f"no source given ({expected})")
        return list(dict.fromkeys(value))

    @field_validator("categories", mode="before")
    @classmethod
    def _categories_list(cls, value: Any) -> Any:
        """Comma-separated arXiv categories."""
        return _split_list(value)

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        """Each entry must look like an arXiv category (`cs.LG`, `hep-th`)."""
        for cat in value:
            if not _CATEGORY.match(cat):
                raise ValueError(f"{cat[:40]!r} is not an arXiv category like cs.LG")
        if not value:
            raise ValueError("at least one arXiv category is needed, e.g. cs.LG")
        return list(dict.fromkeys(value))

    @field_validator("ingest_interval_minutes", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> Any:
        """A whole number of minutes from 1 to one week."""
        try:
            minutes = int(str(value).strip())
        except ValueError:
            got = str(value)[:20]
            raise ValueError(f"expected a whole number of minutes, got {got!r}") from None
        if not 1 <= minutes <= 7 * 24 * 60:
            raise ValueError(f"expected 1 to 10080 minutes, got {minutes}")
        return minutes

    @field_validator("http_timeout")
    @classmethod
    def _timeout(cls, value: float) -> float:
        """Positive seconds."""
        if not 0 < value <= 600:
            raise ValueError(f"expected seconds between 0 and 600, got {value:g}")
        return value

    @field_validator("lease_ttl")
    @classmethod
    def _lease_ttl(cls, value: float) -> float:
        """Long enough to renew over a slow network, short enough for a quick takeover."""
        if not 1 <= value <= 3600:
            raise ValueError(f"expected seconds between 1 and 3600, got {value:g}")
        return value

    @field_validator("clock_stagger_seconds")
    @classmethod
    def _stagger(cls, value: float) -> float:
        """Zero or more seconds, at most an hour."""
        if not 0 <= value <= 3600:
            raise ValueError(f"expected seconds between 0 and 3600, got {value:g}")
        return value

    @field_validator("http_port")
    @classmethod
    def _port(cls, value: int) -> int:
        """A TCP port (0 lets the system pick one)."""
        if not 0 <= value <= 65535:
            raise ValueError(f"expected a port from 0 to 65535, got {value}")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        """One of the standard level names, any case."""
        text = str(value).strip().upper()
        if text == "WARN":
            text = "WARNING"
        if text not in _LOG_LEVELS:
            raise ValueError(f"expected one of {', '.join(_LOG_LEVELS)}, got {str(value)[:20]!r}")
        return text

    @field_validator(
        "hf_api_url", "arxiv_api_url", "arxiv_rss_url", "slack_api_url", "discord_api_url"
    )
    @classmethod
    def _urls(cls, value: str) -> str:
        """Base URLs must be absolute http(s)."""
        return _check_http_url(value) or value

    @field_validator("slack_client_id")
    @classmethod
    def _client_id(cls, value: str | None) -> str | None:
        """Slack client ids are digits and dots (`1234567890.0987654321`)."""
        if value is not None and not re.match(r"^[0-9]+\.[0-9]+$", value.strip()):
            raise ValueError(
                "expected the Client ID from the app's Basic Information page, like 123.456"
            )
        return value.strip() if value else value

    @field_validator("slack_redirect_uri")
    @classmethod
    def _redirect(cls, value: str | None) -> str | None:
        """Slack only redirects to the exact URL registered for the app: an absolute one."""
        return _check_http_url(value)

    @field_validator("slack_uninstall_grace_days")
    @classmethod
    def _grace(cls, value: int) -> int:
        """Whole days from 0 (delete at the next purge) to ten years."""
        if not 0 <= value <= 3650:
            raise ValueError(f"expected 0 to 3650 days, got {value}")
        return value

    @field_validator("discord_gateway_url")
    @classmethod
    def _gateway(cls, value: str | None) -> str | None:
        """The gateway speaks WebSocket."""
        if value is not None and not re.match(r"^wss?://\S+$", value.strip(), re.IGNORECASE):
            raise ValueError(f"expected a ws:// or wss:// URL, got {value[:80]!r}")
        return value.strip() if value else value

    @model_validator(mode="after")
    def _jsonl_needs_path(self) -> Settings:
        """The jsonl source is only usable with a file to read."""
        if "jsonl" in self.sources and self.jsonl_path is None:
            raise ValueError("PAPERBOT_SOURCES lists jsonl but PAPERBOT_JSONL_PATH is not set")
        return self

    # -- helpers ----------------------------------------------------------------------------

    @property
    def redis_dsn(self) -> str | None:
        """The Redis URL in clear, for connecting only (never log it)."""
        return self.redis_url.get_secret_value() if self.redis_url else None

    @property
    def slack_install_flow(self) -> bool:
        """Whether Slack runs for many workspaces (client id and secret, no single bot token)."""
        return self.slack_bot_token is None and bool(
            self.slack_client_id or self.slack_client_secret
        )

    @property
    def log_level_number(self) -> int:
        """`log_level` as a `logging` number."""
        return logging.getLevelNamesMapping()[self.log_level]

    def base_url(self, kind: str) -> str | None:
        """The configured base URL of remote source `kind` (None for local sources)."""
        return {
            "hf": self.hf_api_url,
            "arxiv": self.arxiv_api_url,
            "rss": self.arxiv_rss_url,
        }.get(kind)


def _env_name(field: str) -> str:
    """The environment variable behind a field name."""
    info = Settings.model_fields.get(field)
    alias = info.validation_alias if info else None
    return alias if isinstance(alias, str) else field.upper()


def _describe(error: ValidationError) -> str:
    """A pydantic validation error as one line: `VAR: reason; VAR2: reason`."""
    parts = []
    for item in error.errors(include_url=False, include_input=False):
        loc = item.get("loc") or ()
        name = str(loc[0]) if loc else ""
        name = _env_name(name) if name in Settings.model_fields else name
        message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
        parts.append(f"{name}: {message}" if name else message)
    return "; ".join(parts) or "invalid settings"


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment (overrides win), or raise a one-line ConfigError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
