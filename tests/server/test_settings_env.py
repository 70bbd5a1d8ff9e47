"""ServerSettings through pydantic-settings: model/batch options, nested image limits, errors."""

from __future__ import annotations

import argparse
import re

import pytest

from m0rank.cli.serve import add_arguments, settings_from_args
from m0rank.config import EngineConfig, ImageLimits, ImageSizing
from m0rank.errors import InvalidInputError
from m0rank.server.settings import ServerSettings


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_constructor_ignores_the_environment(monkeypatch):
    monkeypatch.setenv("M0RANK_PORT", "9000")
    assert ServerSettings().port == 8080
    assert ServerSettings.from_env().port == 9000


def test_model_and_batch_defaults_come_from_the_config_dataclasses():
    settings = ServerSettings()
    assert settings.engine_config() == EngineConfig()
    assert settings.image_sizing() == ImageSizing()
    assert (settings.device, settings.dtype, settings.vision_cache_bytes) == (None, None, None)
    assert settings.local_files_only is False


def test_model_options_follow_flag_over_env_over_default(monkeypatch):
    monkeypatch.setenv("M0RANK_DEVICE", "cuda:1")
    monkeypatch.setenv("M0RANK_DTYPE", "bf16")
    monkeypatch.setenv("M0RANK_MAX_PIXELS", "100000")
    monkeypatch.setenv("M0RANK_MAX_BATCH_SIZE", "8")
    monkeypatch.setenv("M0RANK_LOCAL_FILES_ONLY", "true")
    settings = settings_from_args(parse(["--device", "cpu", "--max-batch-tokens", "4096",
                                         "--min-pixels", "1000"]))
    assert (settings.device, settings.dtype) == ("cpu", "bf16")
    assert settings.image_sizing() == ImageSizing(min_pixels=1000, max_pixels=100_000)
    assert settings.engine_config() == EngineConfig(max_batch_tokens=4096, max_batch_size=8)
    assert settings.local_files_only is True
    kwargs = settings.load_kwargs()
    assert (kwargs["device"], kwargs["max_batch_size"], kwargs["local_files_only"]) == (
        "cpu", 8, True)
    assert kwargs["image_limits"] == ImageLimits()


def test_serve_flags_left_out_keep_the_defaults():
    settings = settings_from_args(parse([]))
    assert settings == ServerSettings()


def test_nested_image_limits_from_the_environment():
    settings = ServerSettings.from_env({"M0RANK_IMAGE_LIMITS__MAX_BYTES": "1000",
                                        "M0RANK_IMAGE_ALLOW_HOSTS": "a, b"})
    assert settings.image_limits == ImageLimits(max_bytes=1000)
    assert settings.image_allow_hosts == ("a", "b")
    as_json = ServerSettings.from_env({"M0RANK_IMAGE_LIMITS": '{"max_redirects": 0}'})
    assert as_json.image_limits == ImageLimits(max_redirects=0)


@pytest.mark.parametrize(("env", "message"), [
    ({"M0RANK_IMAGE_LIMITS__MAX_BYTES": "many"},
     "environment variable M0RANK_IMAGE_LIMITS__MAX_BYTES has an invalid value 'many'"),
    ({"M0RANK_IMAGE_LIMITS": "{not json"},
     "environment variable M0RANK_IMAGE_LIMITS has an invalid value '{not json'"),
    ({"M0RANK_IMAGE_LIMITS__MAX_BYTES": "0"},
     "ImageLimits.max_bytes must be a positive number, got 0"),
    ({"M0RANK_MAX_BATCH_SIZE": "0"}, "max_batch_size must be a positive number, got 0"),
    ({"M0RANK_MIN_PIXELS": "700000"}, "min_pixels (700000) must not exceed max_pixels (602112)"),
    ({"M0RANK_LOCAL_FILES_ONLY": "maybe"},
     "environment variable M0RANK_LOCAL_FILES_ONLY has an invalid value 'maybe'"),
])
def test_bad_environment_names_the_variable_or_the_field(env, message):
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        ServerSettings.from_env(env)


def test_constructor_errors_name_the_field():
    with pytest.raises(InvalidInputError, match=re.escape("port has an invalid value 'x'")):
        ServerSettings(port="x")
    with pytest.raises(InvalidInputError, match=re.escape("unknown setting 'prot'")):
        ServerSettings(prot=80)
    with pytest.raises(InvalidInputError, match=re.escape("api_keys must not contain empty keys")):
        ServerSettings(api_keys=("a", " "))


def test_overrides_are_validated_and_settings_stay_frozen():
    settings = ServerSettings()
    assert settings.with_overrides(port=None, rpm_limit=3).rpm_limit == 3
    with pytest.raises(InvalidInputError, match=re.escape("rpm_limit must be >= 0, got -1")):
        settings.with_overrides(rpm_limit=-1)
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]
