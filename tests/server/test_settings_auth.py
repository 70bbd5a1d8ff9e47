"""Settings precedence (flag > env > default), API keys and token-bucket rate limits."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from m0rank.cli.serve import add_arguments, settings_from_args
from m0rank.config import ImageLimits
from m0rank.errors import AuthenticationError, InvalidInputError, RateLimitError
from m0rank.server.auth import ApiKeyAuth, KeyLimits, key_fingerprint
from m0rank.server.settings import ServerSettings, read_keys_file


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_follow_jina_limits():
    settings = ServerSettings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert (settings.rpm_limit, settings.tpm_limit) == (500, 1_000_000)
    assert settings.api_keys == ()


def test_env_overrides_defaults_and_flags_override_env(monkeypatch, tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text("# operators\nfile-key\n\n  other-file-key  \n")
    monkeypatch.setenv("M0RANK_PORT", "9000")
    monkeypatch.setenv("M0RANK_RPM_LIMIT", "7")
    monkeypatch.setenv("M0RANK_API_KEYS", "env-a, env-b")
    monkeypatch.setenv("M0RANK_IMAGE_ALLOW_HOSTS", "10.0.0.0/8,intranet")
    monkeypatch.setenv("M0RANK_MEDIA_DIR", str(tmp_path))
    settings = settings_from_args(parse(["--port", "9100", "--api-key", "flag-key",
                                         "--api-keys-file", str(keys_file)]))
    assert settings.port == 9100  # flag wins
    assert settings.rpm_limit == 7  # env wins over default
    assert settings.api_keys == ("env-a", "env-b", "flag-key", "file-key", "other-file-key")
    assert settings.image_allow_hosts == ("10.0.0.0/8", "intranet")
    assert settings.media_dir == Path(tmp_path)
    fetch = settings.image_fetch_settings()
    assert (fetch.allow_hosts, fetch.media_dir) == (("10.0.0.0/8", "intranet"), Path(tmp_path))


def test_image_limit_flags_override_only_what_is_given():
    settings = settings_from_args(parse(["--image-fetch-timeout", "2.5",
                                         "--image-max-pixels", "1000000"]))
    limits = settings.image_fetch_settings().limits
    assert (limits.fetch_timeout, limits.max_pixels) == (2.5, 1_000_000)
    assert (limits.max_bytes, limits.max_redirects) == (20 * 1024 * 1024, 3)  # defaults kept
    assert settings_from_args(parse([])).image_limits == ImageLimits()
    with pytest.raises(InvalidInputError, match=re.escape(
            "ImageLimits.max_bytes must be a positive number, got 0")):
        settings_from_args(parse(["--image-max-bytes", "0"]))


def test_keys_file_from_env(tmp_path):
    keys_file = tmp_path / "keys"
    keys_file.write_text("k1\nk2\n")
    settings = ServerSettings.from_env({"M0RANK_API_KEYS": "k0",
                                        "M0RANK_API_KEYS_FILE": str(keys_file)})
    assert settings.api_keys == ("k0", "k1", "k2")


@pytest.mark.parametrize(("env", "message"), [
    ({"M0RANK_PORT": "eighty"}, "environment variable M0RANK_PORT has an invalid value 'eighty'"),
    ({"M0RANK_PORT": "0"}, "port must be in 1..65535, got 0"),
    ({"M0RANK_MAX_DOCUMENTS": "-1"}, "max_documents must be a positive number, got -1"),
    ({"M0RANK_TPM_LIMIT": "-5"}, "tpm_limit must be >= 0, got -5"),
])
def test_bad_settings_name_the_variable(env, message):
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        ServerSettings.from_env(env)


def test_missing_keys_file(tmp_path):
    with pytest.raises(InvalidInputError, match=re.escape(
            f"cannot read API keys file {str(tmp_path / 'nope')!r}: No such file or directory")):
        read_keys_file(tmp_path / "nope")


def test_api_key_auth():
    auth = ApiKeyAuth(["alpha", "beta"])
    assert auth.authenticate("Bearer beta") == key_fingerprint("beta")
    assert auth.authenticate("bearer   alpha ") == key_fingerprint("alpha")
    for header, message in ((None, "missing API key"), ("Bearer ", "missing API key"),
                            ("Token alpha", "missing API key"), ("Bearer gamma", "invalid API key"),
                            ("Bearer alph", "invalid API key")):
        with pytest.raises(AuthenticationError, match=re.escape(message)):
            auth.authenticate(header)
    assert ApiKeyAuth([]).authenticate("Bearer anything") is None
    assert "alpha" not in key_fingerprint("alpha")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_request_rate_refills_continuously():
    clock = Clock()
    limits = KeyLimits(rpm=60, tpm=0, clock=clock)
    for _ in range(60):
        limits.admit("k")
    with pytest.raises(RateLimitError) as info:
        limits.admit("k")
    assert info.value.retry_after == pytest.approx(1.0)
    clock.now += 1.0  # one request per second comes back
    limits.admit("k")
    limits.admit("other-key")  # buckets are per key
    limits.admit(None)  # no key (auth off): no limit


def test_token_rate_is_charged_after_the_request():
    clock = Clock()
    limits = KeyLimits(rpm=0, tpm=600, clock=clock)
    limits.admit("k")
    limits.charge_tokens("k", 900)  # overdraft: 300 tokens below zero
    with pytest.raises(RateLimitError, match=re.escape(
            "rate limit exceeded: 600 tokens per minute for this API key")) as info:
        limits.admit("k")
    assert info.value.retry_after == pytest.approx(30.1)  # (1 + 300) tokens at 10 per second
    clock.now += 31
    limits.admit("k")
