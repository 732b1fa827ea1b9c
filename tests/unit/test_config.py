"""The settings object (gridalarm.config): sources, parsing and one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gridalarm.config import DEFAULT_FEATURES, ConfigError, Settings, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees only the GRIDALARM_* variables it sets itself."""
    for name in list(os.environ):
        if name.startswith("GRIDALARM_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.kafka is None
    assert settings.topic_prefix == "gridalarm"
    assert settings.partitions == 8
    assert settings.window == 3600.0
    assert settings.features == DEFAULT_FEATURES
    assert len(settings.features) == 13  # the study's input width
    assert settings.state_dir == Path(".state")


@pytest.mark.parametrize(("text", "seconds"), [("1h", 3600.0), ("5m", 300.0), ("90", 90.0)])
def test_window_durations(text: str, seconds: float) -> None:
    assert load_settings(window=text).window == seconds


def test_lateness_and_idle_timeout_are_durations() -> None:
    settings = load_settings(lateness="2m", idle_timeout="10s")
    assert (settings.lateness, settings.idle_timeout) == (120.0, 10.0)


@pytest.mark.parametrize("bad", ["0.5", "2d", "0", "abc"])
def test_window_out_of_range_is_one_line_naming_the_setting(bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(window=bad)
    text = str(caught.value)
    assert "\n" not in text
    assert "window" in text
    assert "GRIDALARM_WINDOW" in text


def test_window_range_error_says_what_it_accepts() -> None:
    with pytest.raises(ConfigError, match=r"between 1s and 1d"):
        load_settings(window="2d")


def test_window_bounds_are_inclusive() -> None:
    assert load_settings(window="1s").window == 1.0
    assert load_settings(window="1d").window == 86_400.0


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({"partitions": 0}, "partitions"),
        ({"lateness": "-5s"}, "lateness"),
        ({"threshold": 101}, "threshold"),
        ({"topic_prefix": "has space"}, "topic_prefix"),
    ],
)
def test_other_bad_values_are_one_line_naming_the_setting(
    overrides: dict[str, object], name: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(**overrides)
    assert name in str(caught.value)
    assert "\n" not in str(caught.value)


def test_features_from_a_comma_string() -> None:
    assert load_settings(features="JobHeldEvent, ExecuteEvent,,other").features == (
        "JobHeldEvent",
        "ExecuteEvent",
        "other",
    )


@pytest.mark.parametrize(("value", "reason"), [("", "at least one"), ("a,b,a", "unique")])
def test_bad_feature_lists(value: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as caught:
        load_settings(features=value)
    assert "features" in str(caught.value)


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDALARM_KAFKA", "broker-1:9092,broker-2:9092")
    monkeypatch.setenv("GRIDALARM_WINDOW", "5m")
    monkeypatch.setenv("GRIDALARM_PARTITIONS", "4")
    monkeypatch.setenv("GRIDALARM_TOPIC_PREFIX", "site-a")
    settings = load_settings()
    assert settings.kafka == "broker-1:9092,broker-2:9092"
    assert settings.window == 300.0
    assert settings.partitions == 4
    assert settings.topic("alerts") == "site-a.alerts"


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDALARM_WINDOW", "3d")
    with pytest.raises(ConfigError, match="GRIDALARM_WINDOW"):
        load_settings()


def test_features_json_list_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDALARM_FEATURES", '["JobHeldEvent", "other"]')
    assert load_settings().features == ("JobHeldEvent", "other")


def test_features_comma_string_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDALARM_FEATURES", "JobHeldEvent,other")
    assert load_settings().features == ("JobHeldEvent", "other")


def test_cli_overrides_beat_environment_and_none_is_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRIDALARM_WINDOW", "5m")
    assert load_settings(window="1m").window == 60.0
    assert load_settings(window=None).window == 300.0  # an unset CLI option


def test_toml_file_from_gridalarm_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "gridalarm.toml"
    config.write_text(
        'kafka = "kafka.example:9092"\n'
        'window = "5m"\n'
        'topic_prefix = "from-file"\n'
        'features = ["JobHeldEvent", "other"]\n'
        "partitions = 16\n"
    )
    monkeypatch.setenv("GRIDALARM_CONFIG", str(config))
    settings = load_settings()
    assert settings.kafka == "kafka.example:9092"
    assert settings.window == 300.0
    assert settings.topic_prefix == "from-file"
    assert settings.features == ("JobHeldEvent", "other")
    assert settings.partitions == 16


def test_environment_beats_the_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "gridalarm.toml"
    config.write_text('window = "5m"\n')
    monkeypatch.setenv("GRIDALARM_CONFIG", str(config))
    monkeypatch.setenv("GRIDALARM_WINDOW", "1m")
    assert load_settings().window == 60.0


def test_bad_value_in_config_file_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "gridalarm.toml"
    config.write_text('window = "3d"\n')
    monkeypatch.setenv("GRIDALARM_CONFIG", str(config))
    with pytest.raises(ConfigError, match="window") as caught:
        load_settings()
    assert "\n" not in str(caught.value)


def test_missing_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    monkeypatch.setenv("GRIDALARM_CONFIG", str(missing))
    with pytest.raises(ConfigError, match="no such file") as caught:
        load_settings()
    assert str(missing) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_config_file_with_bad_syntax(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "gridalarm.toml"
    config.write_text("window = \n")
    monkeypatch.setenv("GRIDALARM_CONFIG", str(config))
    with pytest.raises(ConfigError):
        load_settings()


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ConfigError, match="no_such_setting"):
        load_settings(no_such_setting=1)


def test_settings_are_immutable() -> None:
    settings = load_settings()
    with pytest.raises(Exception, match="frozen"):
        settings.window = 60.0  # type: ignore[misc]


def test_topic_names() -> None:
    settings = Settings(topic_prefix="gridalarm")
    assert [settings.topic(kind) for kind in ("events", "deadletter")] == [
        "gridalarm.events",
        "gridalarm.deadletter",
    ]
