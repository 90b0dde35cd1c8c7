"""Procfile parsing: text in, process types out, or a ProcfileError naming the line."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gitpaas import procfile
from gitpaas.errors import ProcfileError, PushRefused


def test_name_command_lines_in_file_order():
    text = "web: python3 app.py\nworker: python3 worker.py\nrelease: ./migrate.sh\n"
    parsed = procfile.parse(text)
    assert parsed == {"web": "python3 app.py", "worker": "python3 worker.py", "release": "./migrate.sh"}
    assert list(parsed) == ["web", "worker", "release"]


def test_comments_blank_lines_and_surrounding_spaces_are_skipped():
    text = "# the web process\n\n   \n  web :   gunicorn app  \n\t# indented comment\nclock:cron\n"
    assert procfile.parse(text) == {"web": "gunicorn app", "clock": "cron"}


def test_empty_text_has_no_process_types():
    assert procfile.parse("") == {}
    assert procfile.parse("# only a comment\n\n") == {}


def test_crlf_line_ends_and_byte_order_mark_are_accepted():
    text = "\ufeffweb: python3 app.py\r\nworker: ./work\r\n"
    assert procfile.parse(text) == {"web": "python3 app.py", "worker": "./work"}


def test_byte_order_mark_before_a_malformed_first_line_still_reports_line_1():
    with pytest.raises(ProcfileError) as caught:
        procfile.parse("\ufeffnot a process line\n")
    assert caught.value.line == 1


def test_command_keeps_every_colon_after_the_first():
    parsed = procfile.parse("web: gunicorn app:app --bind 0.0.0.0:$PORT\n")
    assert parsed == {"web": "gunicorn app:app --bind 0.0.0.0:$PORT"}


def test_name_allows_digits_dashes_and_underscores():
    parsed = procfile.parse("2fa: a\nmy-worker: b\nmy_worker: c\nWeb: d\n")
    assert list(parsed) == ["2fa", "my-worker", "my_worker", "Web"]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("web: ok\n\njust a command\n", 3, "expected 'name: command'"),
        ("# c\nweb: ok\n-web: x\n", 3, "invalid process type '-web'"),
        ("web: ok\nmy worker: x\n", 2, "invalid process type 'my worker'"),
        ("web: ok\nwork.er: x\n", 2, "invalid process type 'work.er'"),
        (": no name\n", 1, "invalid process type ''"),
        ("w" * 31 + ": x\n", 1, "invalid process type"),
        ("web: a\r\n\r\nworker: b\r\nweb: c\r\n", 4, "duplicate process type 'web' (first on line 1)"),
        ("web: ok\nworker:\n", 2, "empty command for process type 'worker'"),
        ("web: ok\nworker:    \n", 2, "empty command for process type 'worker'"),
    ],
)
def test_mistakes_raise_procfile_error_with_the_line(text, line, words):
    with pytest.raises(ProcfileError) as caught:
        procfile.parse(text)
    assert caught.value.line == line
    assert words in caught.value.reason
    assert str(caught.value).startswith(f"Procfile line {line}: ")


def test_procfile_error_refuses_the_push():
    with pytest.raises(PushRefused) as caught:
        procfile.parse("oops\n")
    assert caught.value.exit_code == 5
    assert caught.value.http_status == 422


def test_thirty_character_name_is_the_limit():
    assert list(procfile.parse("w" * 30 + ": x\n")) == ["w" * 30]


def test_formation_types_are_every_type_but_release():
    processes = procfile.parse("release: ./migrate\nweb: a\nworker: b\n")
    assert procfile.formation_types(processes) == ["web", "worker"]
    assert procfile.formation_types({"release": "x"}) == []


def test_default_quantity_is_one_web_and_nothing_else():
    assert procfile.default_quantity("web") == 1
    assert procfile.default_quantity("worker") == 0
    assert procfile.default_quantity("release") == 0


# --- properties ------------------------------------------------------------------------------

names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,29}", fullmatch=True)
# Commands: printable text without line breaks, not starting or ending with spaces, may hold colons.
commands = st.text(
    alphabet=st.characters(codec="utf-8", categories=["L", "N", "P", "S", "Zs"], exclude_characters="\x85\u2028\u2029"),
    min_size=1, max_size=40,
).map(str.strip).filter(bool)


@given(st.dictionaries(names, commands, min_size=1, max_size=6), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_a_rendered_procfile_parses_back(processes, newline, bom):
    text = ("\ufeff" if bom else "") + newline.join(f"{name}: {command}" for name, command in processes.items())
    assert procfile.parse(text + newline) == processes


@given(st.lists(st.sampled_from(["", "# comment", "   ", "web: a", "web: b"]), max_size=8))
def test_a_duplicate_is_reported_on_its_second_line(lines):
    text = "\n".join(lines)
    web_lines = [number for number, line in enumerate(lines, start=1) if line.startswith("web")]
    if len(web_lines) < 2:
        assert procfile.parse(text) == ({"web": lines[web_lines[0] - 1][5:]} if web_lines else {})
    else:
        with pytest.raises(ProcfileError) as caught:
            procfile.parse(text)
        assert caught.value.line == web_lines[1]
        assert f"first on line {web_lines[0]}" in caught.value.reason
