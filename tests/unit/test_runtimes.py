"""Which runtime versions an app asks for, read as Heroku reads them, and which stack has them."""

from __future__ import annotations

import json

import pytest

from gitpaas import stacks
from gitpaas.errors import UnsupportedApp, UsageError
from gitpaas.runtimes import Provided, Requested, check_node, choose_python, node_request, python_request

PROVIDED = {
    "bookworm": Provided({"3.11": "3.11.2"}, "18.20.4"),
    "trixie": Provided({"3.13": "3.13.5"}, "20.19.2"),
    "forky": Provided({"3.14": "3.14.8", "3.13": "3.13.15", "3.15": ""}, "24.21"),
}


def reader(mapping: dict[str, str]):
    return mapping.get


# --- .python-version, runtime.txt, Pipfile.lock ------------------------------------------------

def test_python_version_skips_comments_and_blank_lines_as_heroku_does():
    text = "# The Python version to use for the project.\n\n3.14\n"
    assert python_request(reader({".python-version": text})) == Requested("3.14", ".python-version")


@pytest.mark.parametrize("text, version", [("3.13", "3.13"), ("3.13.1\n", "3.13.1"), ("  3.11  \n", "3.11")])
def test_python_version_takes_a_minor_or_a_patch_version(text, version):
    assert python_request(reader({".python-version": text})).version == version


@pytest.mark.parametrize("text", ["pypy3.10", "3", "python-3.13", "3.13.1.2", "latest", "3.x"])
def test_a_python_version_of_another_shape_is_refused_with_the_file_named(text):
    with pytest.raises(UnsupportedApp) as refused:
        python_request(reader({".python-version": text}))
    assert ".python-version asks for Python" in str(refused.value) and "like 3.13 or 3.13.1" in str(refused.value)


@pytest.mark.parametrize("text", ["# only a comment\n", "", "3.13\n3.12\n"])
def test_python_version_must_name_exactly_one_version(text):
    with pytest.raises(UnsupportedApp, match="must name one Python version"):
        python_request(reader({".python-version": text}))


def test_runtime_txt_wins_over_python_version_as_on_heroku():
    assert python_request(reader({"runtime.txt": "python-3.13.2\n"})) == Requested("3.13.2", "runtime.txt")
    both = {".python-version": "3.14", "runtime.txt": "python-3.11.2"}
    assert python_request(reader(both)).origin == "runtime.txt"
    with pytest.raises(UnsupportedApp, match="runtime.txt must say python-3.X"):
        python_request(reader({"runtime.txt": "3.13"}))


def test_pipfile_lock_requires_is_the_last_place_looked():
    lock = json.dumps({"_meta": {"requires": {"python_version": "3.13"}}, "default": {}})
    assert python_request(reader({"Pipfile.lock": lock})) == Requested("3.13", "Pipfile.lock")
    full = json.dumps({"_meta": {"requires": {"python_full_version": "3.13.5", "python_version": "3.13"}}})
    assert python_request(reader({"Pipfile.lock": full})).version == "3.13.5"
    for broken in ("not json", "[1]", '{"_meta": []}', '{"_meta": {"requires": ["3.11"]}}'):
        assert python_request(reader({"Pipfile.lock": broken})) is None  # pipenv says what is wrong with it
    assert python_request(reader({})) is None


# --- which stack has it -------------------------------------------------------------------------

def test_a_version_the_stack_has_is_chosen_with_what_runs():
    minor, said = choose_python(Requested("3.13", ".python-version"), "trixie", PROVIDED, "shop")
    assert minor == "3.13" and said == "Python 3.13.5 (.python-version asks for 3.13)"


def test_a_patch_version_runs_debians_patch_release_of_that_minor_and_says_so():
    minor, said = choose_python(Requested("3.13.1", ".python-version"), "trixie", PROVIDED, "shop")
    assert minor == "3.13"
    assert said == ("Python 3.13.5 (.python-version asks for 3.13.1); Debian ships 3.13 as 3.13.5, "
                    "with its security fixes")


def test_a_newer_patch_than_debian_ships_runs_the_newest_there_is_and_says_so():
    minor, said = choose_python(Requested("3.13.9", ".python-version"), "trixie", PROVIDED, "shop")
    assert minor == "3.13" and said.endswith("Debian ships 3.13 as 3.13.5, older than asked: the newest this stack has")


def test_a_version_on_another_stack_is_refused_with_the_command_to_switch():
    with pytest.raises(UnsupportedApp) as refused:
        choose_python(Requested("3.14", ".python-version"), "trixie", PROVIDED, "shop")
    assert str(refused.value) == ("Python 3.14 (.python-version) is not on the trixie stack, which has 3.13; "
                                  "the forky stack has it: run `gitpaas stack:set forky -a shop` and push again")


def test_a_version_no_stack_has_is_refused_with_every_version_there_is():
    with pytest.raises(UnsupportedApp) as refused:
        choose_python(Requested("3.9", "runtime.txt"), "trixie", PROVIDED, "shop")
    assert str(refused.value) == ("Python 3.9 (runtime.txt) is on no stack of this server: it has 3.11 (bookworm); "
                                  "3.13 (trixie); 3.14, 3.13, 3.15 (forky)")


def test_a_stack_not_built_yet_still_offers_its_versions():
    minor, said = choose_python(Requested("3.15", ".python-version"), "forky", PROVIDED, "shop")
    assert minor == "3.15" and said == "Python 3.15 (.python-version asks for 3.15)"


# --- Node.js --------------------------------------------------------------------------------------

def test_engines_node_is_read_from_package_json():
    assert node_request(reader({"package.json": '{"engines": {"node": " 20.x "}}'})) == \
        Requested("20.x", "package.json engines.node")
    for text in ('{"name": "x"}', '{"engines": {"npm": "10"}}', '{"engines": {"node": ""}}', "not json", '"text"'):
        assert node_request(reader({"package.json": text})) is None
    assert node_request(reader({})) is None


@pytest.mark.parametrize("wanted", ["20.x", ">=18", ">= 18", "^20.10.0", "18 || 20", "~20.19", "*", ">=20 <21",
                                    ">= 20 < 21"])
def test_a_range_the_stacks_node_satisfies_is_accepted(wanted):
    assert check_node(Requested(wanted, "package.json engines.node"), "trixie", PROVIDED, "shop") == \
        f"Node.js 20.19.2 (package.json engines.node asks for {wanted})"


def test_a_range_another_stack_satisfies_is_refused_with_the_command_to_switch():
    with pytest.raises(UnsupportedApp) as refused:
        check_node(Requested("24.x", "package.json engines.node"), "trixie", PROVIDED, "shop")
    assert str(refused.value) == ("Node.js 24.x (package.json engines.node) is not on the trixie stack, which has "
                                  "20.19.2; the forky stack has 24.21: run `gitpaas stack:set forky -a shop` and "
                                  "push again")


def test_a_range_no_stack_satisfies_lists_every_nodejs_there_is():
    with pytest.raises(UnsupportedApp) as refused:
        check_node(Requested("16.x", "package.json engines.node"), "trixie", PROVIDED, "shop")
    assert str(refused.value).endswith("is on no stack of this server: it has 18.20.4 (bookworm), "
                                       "20.19.2 (trixie), 24.21 (forky)")


def test_a_range_npm_would_not_understand_is_refused_as_such():
    with pytest.raises(UnsupportedApp, match="not a version range npm understands"):
        check_node(Requested("lts/*", "package.json engines.node"), "trixie", PROVIDED, "shop")


# --- the catalogue -----------------------------------------------------------------------------------

def test_the_catalogue_names_debians_suites_with_trixie_the_default():
    assert list(stacks.STACKS) == ["bookworm", "trixie", "forky"]
    assert stacks.DEFAULT_STACK == "trixie" and stacks.STACKS["forky"].state == "beta"
    assert stacks.get("Trixie").name == "trixie"
    assert stacks.get(stacks.STACKS["forky"].id).name == "forky"
    assert stacks.get("gitpaas-bookworm").name == "bookworm"  # the API's name before there were several
    assert stacks.of_record(None).name == "bookworm"  # recorded before stacks could be chosen
    with pytest.raises(UsageError, match="no stack 'heroku-24': gitpaas has bookworm, trixie, forky"):
        stacks.get("heroku-24")
