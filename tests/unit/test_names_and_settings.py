"""App names (Heroku's rule) and Settings.from_env: defaults, precedence, bad values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitpaas import settings as settings_module
from gitpaas.errors import InvalidAppName, UsageError
from gitpaas.names import validate_app_name
from gitpaas.settings import Settings

# --- app names -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "web", "my-app", "app2", "a1-b2-c3", "x" * 30, "a-" + "b" * 28])
def test_valid_app_names_are_returned(name):
    assert validate_app_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "", "1app", "-app", "app-", "My-App", "my_app", "my.app", "my app", "x" * 31,
        "app\n", "\napp", "café", "../etc", "app/x", None, 42,
    ],
)
def test_invalid_app_names_are_refused(name):
    with pytest.raises(InvalidAppName) as caught:
        validate_app_name(name)
    assert caught.value.exit_code == 2
    assert repr(name) in caught.value.message


# --- settings --------------------------------------------------------------------------------


@pytest.fixture
def not_root(monkeypatch):
    monkeypatch.setattr(settings_module, "_is_root", lambda: False)


def record_home(home: Path, **values) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "home.json").write_text(json.dumps(values))


def test_defaults_for_a_user(tmp_path, not_root):
    settings = Settings.from_env({"HOME": str(tmp_path)})
    assert settings.home == tmp_path / ".local/share/gitpaas"
    assert settings.domain == "localhost"
    assert settings.http_port == 8080
    assert settings.stack_image(settings.default_stack) == "gitpaas/stack:trixie"
    assert (settings.release_timeout, settings.boot_timeout, settings.stop_timeout) == (3600.0, 60.0, 30.0)


def test_xdg_data_home_moves_the_default_home(tmp_path, not_root):
    settings = Settings.from_env({"HOME": "/nowhere", "XDG_DATA_HOME": str(tmp_path / "data")})
    assert settings.home == tmp_path / "data/gitpaas"


def test_defaults_for_root(tmp_path, monkeypatch):
    monkeypatch.setattr(settings_module, "_is_root", lambda: True)
    settings = Settings.from_env({"HOME": str(tmp_path)})
    assert settings.home == Path("/var/lib/gitpaas")
    assert settings.http_port == 80


def test_environment_sets_everything(tmp_path):
    settings = Settings.from_env({
        "GITPAAS_HOME": str(tmp_path / "home"), "GITPAAS_DOMAIN": "example.test", "GITPAAS_HTTP_PORT": "9090",
        "GITPAAS_STACK_REPOSITORY": "me/stack", "GITPAAS_STACK": "Bookworm", "GITPAAS_RELEASE_TIMEOUT": "2.5", "GITPAAS_BOOT_TIMEOUT": "7",
        "GITPAAS_STOP_TIMEOUT": "1",
    })
    assert settings.home == tmp_path / "home"
    assert (settings.domain, settings.http_port) == ("example.test", 9090)
    assert (settings.default_stack, settings.stack_image("forky")) == ("bookworm", "me/stack:forky")
    assert (settings.release_timeout, settings.boot_timeout, settings.stop_timeout) == (2.5, 7.0, 1.0)
    assert settings.environ["GITPAAS_DOMAIN"] == "example.test"


def test_relative_home_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({"GITPAAS_HOME": "rel/home"}).home == tmp_path / "rel/home"


def test_home_record_is_used_when_the_environment_is_silent(tmp_path):
    home = tmp_path / "home"
    record_home(home, domain="recorded.test", http_port=8181)
    settings = Settings.from_env({"GITPAAS_HOME": str(home)})
    assert (settings.domain, settings.http_port) == ("recorded.test", 8181)


def test_environment_wins_over_the_home_record(tmp_path):
    home = tmp_path / "home"
    record_home(home, domain="recorded.test", http_port=8181)
    settings = Settings.from_env({"GITPAAS_HOME": str(home), "GITPAAS_DOMAIN": "env.test", "GITPAAS_HTTP_PORT": "9191"})
    assert (settings.domain, settings.http_port) == ("env.test", 9191)


def test_empty_variables_count_as_unset(tmp_path):
    home = tmp_path / "home"
    record_home(home, domain="recorded.test", http_port=8181)
    settings = Settings.from_env({"GITPAAS_HOME": str(home), "GITPAAS_DOMAIN": "", "GITPAAS_HTTP_PORT": "",
                                  "GITPAAS_RELEASE_TIMEOUT": ""})
    assert (settings.domain, settings.http_port, settings.release_timeout) == ("recorded.test", 8181, 3600.0)


def test_a_corrupt_home_record_is_ignored(tmp_path, not_root):
    home = tmp_path / "home"
    home.mkdir()
    (home / "home.json").write_text("{not json")
    settings = Settings.from_env({"GITPAAS_HOME": str(home)})
    assert (settings.domain, settings.http_port) == ("localhost", 8080)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("GITPAAS_HTTP_PORT", "eighty"), ("GITPAAS_HTTP_PORT", "80.5"), ("GITPAAS_HTTP_PORT", "0"),
        ("GITPAAS_HTTP_PORT", "-1"), ("GITPAAS_RELEASE_TIMEOUT", "soon"), ("GITPAAS_RELEASE_TIMEOUT", "0"),
        ("GITPAAS_RELEASE_TIMEOUT", "-5"), ("GITPAAS_BOOT_TIMEOUT", "x"), ("GITPAAS_STOP_TIMEOUT", "0"),
    ],
)
def test_bad_numbers_are_usage_errors_naming_the_variable(tmp_path, key, value):
    with pytest.raises(UsageError) as caught:
        Settings.from_env({"GITPAAS_HOME": str(tmp_path), key: value})
    assert key in caught.value.message
    assert repr(value) in caught.value.message
    assert caught.value.exit_code == 2


def test_web_url_omits_port_80(tmp_path):
    assert Settings(home=tmp_path, domain="example.test", http_port=80).web_url("shop") == "http://shop.example.test/"
    assert Settings(home=tmp_path, http_port=8080).web_url("shop") == "http://shop.localhost:8080/"
    assert Settings(home=tmp_path, http_port=8080).app_host("shop") == "shop.localhost"


def test_home_id_is_stable_and_differs_per_home(tmp_path):
    one, same, other = Settings(home=tmp_path / "a"), Settings(home=tmp_path / "a"), Settings(home=tmp_path / "b")
    assert one.home_id == same.home_id
    assert one.home_id != other.home_id
    assert len(one.home_id) == 8
    assert one.app_network("shop") == f"gitpaas-{one.home_id}-shop" != other.app_network("shop")
    assert one.app_network("shop") != one.app_network("blog"), "each app has its own network"
    assert one.image_repository("shop") == f"gitpaas-{one.home_id}/shop"


def test_settings_are_frozen(tmp_path):
    settings = Settings(home=tmp_path)
    with pytest.raises(AttributeError):
        settings.http_port = 1  # type: ignore[misc]


def test_buildpack_allow_list_and_private_webhook_targets_come_from_the_environment(tmp_path):
    defaults = Settings.from_env({"GITPAAS_HOME": str(tmp_path)})
    assert defaults.buildpack_allow == () and defaults.webhook_private_targets is False
    settings = Settings.from_env({
        "GITPAAS_HOME": str(tmp_path), "GITPAAS_WEBHOOK_PRIVATE_TARGETS": "1",
        # commas and spaces between entries; the colons of URLs (git@host:/srv/ too) kept
        "GITPAAS_BUILDPACK_ALLOW": "/srv/buildpacks,/opt/bp https://git.corp.example:8443/team/, git@corp.example:/srv/,"
                                   "file:///srv/shared.git",
    })
    assert settings.buildpack_allow == ("/srv/buildpacks", "/opt/bp", "https://git.corp.example:8443/team/",
                                        "git@corp.example:/srv/", "file:///srv/shared.git")
    assert settings.webhook_private_targets is True
    for value, expected in (("0", False), ("", False), ("true", True), ("off", False)):
        assert Settings.from_env({"GITPAAS_HOME": str(tmp_path), "GITPAAS_WEBHOOK_PRIVATE_TARGETS": value}
                                 ).webhook_private_targets is expected


@pytest.mark.parametrize(("key", "value"), [
    ("GITPAAS_BUILDPACK_ALLOW", "buildpacks"), ("GITPAAS_BUILDPACK_ALLOW", "/srv/bp,relative/bp"),
    ("GITPAAS_WEBHOOK_PRIVATE_TARGETS", "maybe"),
])
def test_bad_allow_lists_and_flags_are_usage_errors_naming_the_variable(tmp_path, key, value):
    with pytest.raises(UsageError) as caught:
        Settings.from_env({"GITPAAS_HOME": str(tmp_path), key: value})
    assert key in caught.value.message and caught.value.exit_code == 2
