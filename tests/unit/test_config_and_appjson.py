"""Config var parsing and descriptions, and app.json parsing: pure functions."""

from __future__ import annotations

import pytest

from gitpaas import appjson
from gitpaas.config import describe_change, parse_assignments, validate_key, validate_value
from gitpaas.errors import InvalidParams, PushRefused, UsageError
from gitpaas.release import parse_version


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


# --- issue 11: one set of rules for config values, numbers and app.json --------------------------

@pytest.mark.parametrize("value, words", [
    ("a\x00b", "contains a NUL byte"), ("x" * (32 * 1024 + 1), "is larger than 32 KiB"),
    ("é" * (16 * 1024 + 1), "is larger than 32 KiB"), ("\ud800", "is not valid UTF-8 text"),
    ("ok\udcffok", "is not valid UTF-8 text"),
])
def test_values_no_environment_can_hold_are_invalid_params(value, words):
    with pytest.raises(InvalidParams, match=f"^the value of KEY {words}") as caught:
        validate_value("KEY", value)
    assert caught.value.http_status == 422 and caught.value.exit_code == 2 and "\n" not in caught.value.message
    with pytest.raises(InvalidParams, match=words):
        parse_assignments([f"KEY={value}"])


def test_values_that_fit_are_kept_as_they_are():
    for value in ("", "x" * 32 * 1024, "multi\nline ✓ \N{GRINNING FACE}"):
        assert validate_value("KEY", value) == value
    assert validate_key("K" * 256) == "K" * 256
    with pytest.raises(InvalidParams, match="limited to 256 characters"):
        validate_key("K" * 257)


@pytest.mark.parametrize("text, expected", [
    ("v12", 12), ("12", 12), ("V3", 3), (7, 7), ("v²", None), ("²", None), ("v١٢", None), ("١", None), ("0", None),
    ("v0", None), ("-1", None), (" 1", None), ("1\n", None), ("v", None), ("", None), ("9" * 5000, None),
])
def test_versions_are_ascii_digits(text, expected):
    assert parse_version(text) == expected


@pytest.mark.parametrize("text, message", [
    ("[" * 100_000, "app.json is too deeply nested (more than 64 levels)"),
    ('{"a": ' * 65 + "1" + "}" * 65, "app.json is too deeply nested (more than 64 levels)"),
    ('{"healthchecks": {"web": [{"path": "/", "attempts": Infinity}]}}', "app.json is not valid JSON: Infinity is"),
    ('{"healthchecks": {"web": [{"path": "/", "wait": NaN}]}}', "app.json is not valid JSON: NaN is not a JSON number"),
    ('{"a": -Infinity}', "app.json is not valid JSON: -Infinity is not a JSON number"),
    ('{"healthchecks": {"web": [{"path": "/", "attempts": 1e400}]}}', "app.json is not valid JSON: 1e400 is too large"),
    ('{"a": 1' + "0" * 5000 + "}", "app.json is not valid JSON: a number has more than 30 digits"),
])
def test_app_json_python_cannot_hold_is_refused_in_one_line(text, message):
    with pytest.raises(PushRefused) as caught:
        appjson.parse(text)
    assert caught.value.message.startswith(message) and "\n" not in caught.value.message
    assert "/" not in caught.value.message, "no server path"


def test_app_json_that_nests_within_the_limit_is_fine():
    nested = '{"x": ' * 63 + "1" + "}" * 63
    assert appjson.parse('{"deep": ' + nested + ', "scripts": {"postdeploy": "seed"}, "n": -1.5}').postdeploy == "seed"


def test_config_vars_together_are_limited_as_on_heroku(platform):
    from gitpaas import events
    from gitpaas.errors import InvalidParams
    from gitpaas.identity import OPERATOR
    from gitpaas.output import NullOutput

    big = "x" * 30_000
    events.change_config(platform, "shop", OPERATOR, NullOutput(), set_values={"A": big})
    with pytest.raises(InvalidParams, match="limited to 32 KiB together"):
        events.change_config(platform, "shop", OPERATOR, NullOutput(), set_values={"B": big})
    assert platform.apps.config("shop").get() == {"A": big}, "nothing was changed"


# --- app.json with comments (Dokku's own sample apps have them) ------------------------------------

COMMENTED = """{
  // what runs once, after the first release
  "scripts": {"postdeploy": "curl http://example.test/hook // a URL, not a comment"},
  /* the add-ons,
     provisioned before the first release phase */
  "addons": ["heroku-postgresql"], "note": "a /* in a string */ stays"
}"""


def test_app_json_may_have_line_and_block_comments():
    parsed = appjson.parse(COMMENTED)
    assert parsed.postdeploy == "curl http://example.test/hook // a URL, not a comment"
    assert parsed.addons == (("postgresql", None),)


def test_a_real_syntax_error_after_comments_keeps_its_own_line_and_column():
    broken = "{\n  // a comment\n  /* another */ \"scripts\": {,}\n}"
    with pytest.raises(PushRefused) as refused:
        appjson.parse(broken)
    assert str(refused.value) == ("app.json is not valid JSON: line 3 column 29: "
                                  "Expecting property name enclosed in double quotes")


def test_an_unclosed_block_comment_is_reported_where_it_opens():
    with pytest.raises(PushRefused, match="line 2 column 3: a /\\* comment is not closed"):
        appjson.parse('{\n  /* never closed\n  "scripts": {}\n}')


def test_escaped_quotes_do_not_end_a_string_early():
    assert appjson.without_comments('{"a": "say \\"//\\" twice"} // end') == '{"a": "say \\"//\\" twice"}       '
