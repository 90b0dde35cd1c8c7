"""Config var parsing and descriptions, and app.json parsing: pure functions."""

from __future__ import annotations

import pytest

from gitpaas import appjson
from gitpaas.config import describe_change, parse_assignments, validate_key
from gitpaas.errors import PushRefused, UsageError


def test_values_keep_everything_after_the_first_equals_sign():
    assert parse_assignments(["A=1", "B=x=y", "C=", "D=multi\nline ✓"]) == {
        "A": "1", "B": "x=y", "C": "", "D": "multi\nline ✓"}


@pytest.mark.parametrize("item, message", [
    ("NOVALUE", "write KEY=VALUE"), ("1X=1", "invalid config var name '1X'"), ("A-B=1", "invalid config var name"),
    ("=1", "invalid config var name ''"), ("NUL=a\x00b", "NUL byte"),
])
def test_bad_assignments_are_refused(item, message):
    with pytest.raises(UsageError, match=message):
        parse_assignments([item])


def test_nothing_to_set_is_refused():
    with pytest.raises(UsageError, match="nothing to set"):
        parse_assignments([])


def test_keys_follow_environment_variable_names():
    assert validate_key("_OK_1") == "_OK_1"
    with pytest.raises(UsageError):
        validate_key("with space")


def test_descriptions_are_herokus():
    assert describe_change(["FOO", "BAR"], []) == "Set FOO, BAR config vars"
    assert describe_change([], ["FOO"]) == "Remove FOO config vars"
    assert describe_change(["A"], ["B"]) == "Set A config vars and Remove B config vars"


def test_app_json_postdeploy_and_unknown_keys():
    assert appjson.parse(None).postdeploy is None
    assert appjson.parse('{"name": "x", "env": {}, "scripts": {"postdeploy": "rake db:seed"}}').postdeploy == "rake db:seed"
    assert appjson.parse('{"scripts": {"postdeploy": {"command": "seed", "size": "basic"}}}').postdeploy == "seed"
    assert appjson.parse('{"scripts": {"predestroy": "x"}}').postdeploy is None


@pytest.mark.parametrize("text, message", [
    ('{"scripts": ', "app.json is not valid JSON: line 1 column"), ("[]", "must be a JSON object"),
    ('{"scripts": []}', '"scripts" must be an object'), ('{"scripts": {"postdeploy": 3}}', "must be a command"),
    ('{"scripts": {"postdeploy": "  "}}', "must be a command"),
])
def test_bad_app_json_is_refused_with_a_reason(text, message):
    with pytest.raises(PushRefused, match=message):
        appjson.parse(text)
