"""Settings: environment names, defaults, parsing of lists, validation messages, secrets."""

from __future__ import annotations

from pathlib import Path

import platformdirs
import pytest

from bot.config import ConfigError, Settings, load_settings
from recommender.sources import arxiv_api, arxiv_rss, hf_daily


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting leaks in from the environment the tests happen to run in."""
    for info in Settings.model_fields.values():
        if isinstance(info.validation_alias, str):
            monkeypatch.delenv(info.validation_alias, raising=False)


def test_defaults() -> None:
    """With nothing set: embedded Redis, hf+rss hourly, the sources' own base URLs."""
    s = load_settings()
    assert s.redis_url is None and s.redis_dsn is None
    assert s.data_dir == Path(platformdirs.user_data_dir("paperbot", appauthor=False))
    assert s.sources == ["hf", "rss"]
    assert s.ingest_interval_minutes == 60
    assert s.categories == ["cs.LG", "cs.CL", "cs.AI"]
    assert s.arxiv_query is None and s.jsonl_path is None
    assert s.hf_api_url == hf_daily.DEFAULT_BASE_URL
    assert s.arxiv_api_url == arxiv_api.DEFAULT_BASE_URL
    assert s.arxiv_rss_url == arxiv_rss.DEFAULT_BASE_URL
    assert s.http_timeout == 20
    assert s.log_level == "INFO"
    assert s.embeddings is True
    assert s.slack_api_url == "https://slack.com/api/"
    assert (s.http_host, s.http_port) == ("127.0.0.1", 3000)
    assert s.discord_api_url == "https://discord.com/api/v10"
    assert s.discord_gateway_url is None
    assert s.slack_bot_token is None and s.discord_token is None


def test_every_field_reads_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each documented variable lands in its field, lists split on commas."""
    env = {
        "REDIS_URL": "redis://127.0.0.1:6379/3",
        "PAPERBOT_DATA_DIR": str(tmp_path),
        "PAPERBOT_SOURCES": " HF, arxiv ,jsonl,hf",
        "PAPERBOT_INGEST_INTERVAL_MINUTES": "15",
        "PAPERBOT_CATEGORIES": "cs.LG, stat.ML,hep-th",
        "PAPERBOT_ARXIV_QUERY": "diffusion",
        "PAPERBOT_JSONL_PATH": str(tmp_path / "p.jsonl"),
        "HF_API_URL": "http://127.0.0.1:9/",
        "ARXIV_API_URL": "http://127.0.0.1:9/api/query",
        "ARXIV_RSS_URL": "http://127.0.0.1:9",
        "PAPERBOT_HTTP_TIMEOUT": "2.5",
        "PAPERBOT_LOG_LEVEL": "debug",
        "PAPERBOT_EMBEDDINGS": "false",
        "SLACK_BOT_TOKEN": "xoxb-123",
        "SLACK_SIGNING_SECRET": "sign",
        "SLACK_APP_TOKEN": "xapp-1",
        "SLACK_API_URL": "http://127.0.0.1:9/api/",
        "PAPERBOT_HTTP_HOST": "0.0.0.0",
        "PAPERBOT_HTTP_PORT": "8080",
        "DISCORD_TOKEN": "disc",
        "DISCORD_API_URL": "http://127.0.0.1:9/api/v10",
        "DISCORD_GATEWAY_URL": "ws://127.0.0.1:9/gateway",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert s.redis_dsn == "redis://127.0.0.1:6379/3"
    assert s.data_dir == tmp_path
    assert s.sources == ["hf", "arxiv", "jsonl"]
    assert s.ingest_interval_minutes == 15
    assert s.categories == ["cs.LG", "stat.ML", "hep-th"]
    assert s.arxiv_query == "diffusion"
    assert s.jsonl_path == tmp_path / "p.jsonl"
    assert s.base_url("hf") == "http://127.0.0.1:9/"
    assert s.base_url("arxiv") == "http://127.0.0.1:9/api/query"
    assert s.base_url("rss") == "http://127.0.0.1:9"
    assert s.base_url("jsonl") is None
    assert s.http_timeout == 2.5
    assert s.log_level == "DEBUG"
    assert s.embeddings is False
    assert s.slack_bot_token is not None and s.slack_bot_token.get_secret_value() == "xoxb-123"
    assert s.slack_signing_secret is not None
    assert s.slack_app_token is not None
    assert s.slack_api_url == "http://127.0.0.1:9/api/"
    assert (s.http_host, s.http_port) == ("0.0.0.0", 8080)
    assert s.discord_token is not None and s.discord_token.get_secret_value() == "disc"
    assert s.discord_api_url == "http://127.0.0.1:9/api/v10"
    assert s.discord_gateway_url == "ws://127.0.0.1:9/gateway"


def test_secrets_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens and a Redis password stay out of repr/str/model_dump_json."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-very-secret")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "signing-very-secret")
    monkeypatch.setenv("DISCORD_TOKEN", "discord-very-secret")
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@127.0.0.1:6379/0")
    s = load_settings()
    for text in (repr(s), str(s), s.model_dump_json()):
        assert "very-secret" not in text
        assert "hunter2" not in text


def test_blank_values_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """`VAR=` lines in an env file do not turn into empty strings."""
    monkeypatch.setenv("REDIS_URL", "")
    monkeypatch.setenv("SLACK_BOT_TOKEN", " ")
    monkeypatch.setenv("PAPERBOT_DATA_DIR", "")
    monkeypatch.setenv("PAPERBOT_EMBEDDINGS", "")
    monkeypatch.setenv("PAPERBOT_HTTP_TIMEOUT", "")
    monkeypatch.setenv("PAPERBOT_SOURCES", "")
    s = load_settings()
    assert s.redis_url is None
    assert s.slack_bot_token is None
    assert s.embeddings is True and s.http_timeout == 20 and s.sources == ["hf", "rss"]
    assert s.data_dir == Path(platformdirs.user_data_dir("paperbot", appauthor=False))


def test_overrides_by_field_name() -> None:
    """Tests and the composition root can pass values by field name."""
    s = load_settings(sources=["jsonl"], jsonl_path="x.jsonl", ingest_interval_minutes=5)
    assert s.sources == ["jsonl"] and s.ingest_interval_minutes == 5


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PAPERBOT_SOURCES", "hf,twitter", "PAPERBOT_SOURCES: unknown source 'twitter'"),
        ("PAPERBOT_SOURCES", ",", "PAPERBOT_SOURCES: no source given"),
        ("PAPERBOT_SOURCES", "jsonl", "PAPERBOT_JSONL_PATH is not set"),
        ("PAPERBOT_INGEST_INTERVAL_MINUTES", "0", "expected 1 to 10080 minutes, got 0"),
        ("PAPERBOT_INGEST_INTERVAL_MINUTES", "-5", "expected 1 to 10080 minutes"),
        ("PAPERBOT_INGEST_INTERVAL_MINUTES", "hourly", "expected a whole number of minutes"),
        ("PAPERBOT_INGEST_INTERVAL_MINUTES", "99999", "expected 1 to 10080 minutes"),
        ("PAPERBOT_CATEGORIES", "cs.LG,machine learning", "is not an arXiv category"),
        ("PAPERBOT_HTTP_TIMEOUT", "0", "PAPERBOT_HTTP_TIMEOUT: expected seconds"),
        ("PAPERBOT_HTTP_TIMEOUT", "soon", "PAPERBOT_HTTP_TIMEOUT"),
        ("PAPERBOT_LOG_LEVEL", "chatty", "PAPERBOT_LOG_LEVEL: expected one of"),
        ("PAPERBOT_HTTP_PORT", "70000", "PAPERBOT_HTTP_PORT: expected a port"),
        ("HF_API_URL", "huggingface.co", "HF_API_URL: expected an http:// or https:// URL"),
        ("ARXIV_API_URL", "ftp://x", "ARXIV_API_URL"),
        ("DISCORD_GATEWAY_URL", "http://x", "DISCORD_GATEWAY_URL: expected a ws://"),
        ("REDIS_URL", "localhost:6379", "REDIS_URL: expected a redis://"),
    ],
)
def test_bad_values_give_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    """Each bad value is reported as one line naming the variable."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_bad_redis_url_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A malformed URL may still hold a password: the message must not repeat it."""
    monkeypatch.setenv("REDIS_URL", "http://user:hunter2@host:6379")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://10.0.0.5:7000",
        "rediss+cluster://:pw@redis.internal:7000",
        "redis://10.0.0.5:7000/0?cluster=1",
    ],
)
def test_a_redis_cluster_url_is_accepted(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """A Redis Cluster is named by its scheme or by `?cluster=1`."""
    monkeypatch.setenv("REDIS_URL", url)
    assert load_settings().redis_dsn == url


def test_several_errors_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """All problems are listed at once, still on one line."""
    monkeypatch.setenv("PAPERBOT_SOURCES", "nope")
    monkeypatch.setenv("PAPERBOT_INGEST_INTERVAL_MINUTES", "0")
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert "PAPERBOT_SOURCES" in text and "PAPERBOT_INGEST_INTERVAL_MINUTES" in text
    assert "\n" not in text


def test_slack_install_flow_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Client id, secret, redirect URL and grace days; the flow is on only without a bot token."""
    monkeypatch.setenv("SLACK_CLIENT_ID", " 1234567890.0987654321 ")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", "csecret")
    monkeypatch.setenv("SLACK_REDIRECT_URI", "https://bot.example.org/slack/oauth_redirect")
    monkeypatch.setenv("SLACK_UNINSTALL_GRACE_DAYS", "7")
    s = load_settings()
    assert s.slack_client_id == "1234567890.0987654321"
    assert s.slack_client_secret is not None
    assert s.slack_client_secret.get_secret_value() == "csecret"
    assert "csecret" not in repr(s)
    assert s.slack_redirect_uri == "https://bot.example.org/slack/oauth_redirect"
    assert s.slack_uninstall_grace_days == 7
    assert s.slack_install_flow
    assert not load_settings(SLACK_BOT_TOKEN="xoxb-1").slack_install_flow
    assert load_settings(SLACK_CLIENT_ID=None, SLACK_CLIENT_SECRET=None).slack_install_flow is False
    assert load_settings(SLACK_UNINSTALL_GRACE_DAYS="").slack_uninstall_grace_days == 30


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SLACK_CLIENT_ID", "my-app", "Client ID"),
        ("SLACK_REDIRECT_URI", "bot.example.org/slack/oauth_redirect", "http"),
        ("SLACK_UNINSTALL_GRACE_DAYS", "-1", "0 to 3650"),
        ("SLACK_UNINSTALL_GRACE_DAYS", "soon", "SLACK_UNINSTALL_GRACE_DAYS"),
    ],
)
def test_bad_slack_install_settings_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    """A bad value is one line naming the variable."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert name in str(info.value) and message in str(info.value)
    assert "\n" not in str(info.value)
