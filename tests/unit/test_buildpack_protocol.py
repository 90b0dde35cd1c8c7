"""The text side of the buildpack API: .buildpacks, bin/release's YAML, step headers, passed environment."""

from __future__ import annotations

import pytest

from gitpaas.build.buildpack_protocol import (
    build_environment,
    parse_buildpacks_file,
    parse_release,
    route_line,
)
from gitpaas.errors import BuildFailed


def test_buildpacks_file_keeps_order_and_skips_blanks_and_comments():
    text = "\ufeff# first the assets\nnodejs\n\n  python  \r\n# done\nhttps://example.invalid/bp.git#v2\n"
    assert parse_buildpacks_file(text) == ["nodejs", "python", "https://example.invalid/bp.git#v2"]
    assert parse_buildpacks_file("") == []


@pytest.mark.parametrize("text, expected", [
    ("---\naddons: []\ndefault_process_types:\n  web: npm start\n", {"web": "npm start"}),
    ("---\ndefault_process_types:\n  web: 'python3 -m http.server $PORT'\n  worker: \"node w.js\"\nconfig_vars: {}\n",
     {"web": "python3 -m http.server $PORT", "worker": "node w.js"}),
    ("---\ndefault_process_types: {}\n", {}),
    ("---\n", {}),
    ("", {}),
    ("---\nconfig_vars:\n  PATH: /app/bin\ndefault_process_types:\n  web: bin/start --port=$PORT: yes\n",
     {"web": "bin/start --port=$PORT: yes"}),
])
def test_release_yaml_gives_the_default_process_types(text, expected):
    assert parse_release(text, "nodejs") == expected


def test_release_output_that_is_not_yaml_names_the_buildpack_and_line():
    with pytest.raises(BuildFailed) as caught:
        parse_release("---\nweb npm start\n", "/srv/bp")
    assert caught.value.reason == "buildpack /srv/bp: bin/release line 2 is not YAML: 'web npm start'"
    with pytest.raises(BuildFailed, match="line 2: write default_process_types"):
        parse_release("---\ndefault_process_types: {web: npm start}\n", "x")


@pytest.mark.parametrize("line, routed", [
    ("-----> Installing requirements with pip", ("stage", "Installing requirements with pip")),
    ("       Successfully installed six-1.17.0", ("info", "Successfully installed six-1.17.0")),
    (" !     pip could not install requirements.txt", ("warn", "pip could not install requirements.txt")),
    (" ! short warning", ("warn", "short warning")),
    ("npm ERR! 404 Not Found\r", ("info", "npm ERR! 404 Not Found")),
    ("", ("info", "")),
])
def test_step_headers_keep_their_meaning(line, routed):
    assert route_line(line) == routed


def test_only_settings_that_mean_something_in_a_container_are_passed():
    environ = {
        "PIP_INDEX_URL": "https://pypi.example.invalid/simple",
        "PIP_EXTRA_INDEX_URL": "file:///opt/pypi/simple https://extra.example.invalid/simple file:///opt/more",
        "PIP_FIND_LINKS": "/opt/wheels", "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt",
        "HTTPS_PROXY": "http://proxy.example.invalid:3128", "http_proxy": "socks5://nope", "NO_PROXY": "localhost,.internal",
        "npm_config_registry": "https://npm.example.invalid/", "NPM_CONFIG_REGISTRY": "file:///srv/npm",
        "HOME": "/root", "GIT_DIR": "/srv/repo.git", "SECRET": "x",
    }
    assert build_environment(environ) == {
        "PIP_INDEX_URL": "https://pypi.example.invalid/simple",
        "PIP_EXTRA_INDEX_URL": "https://extra.example.invalid/simple",
        "HTTPS_PROXY": "http://proxy.example.invalid:3128", "NO_PROXY": "localhost,.internal",
        "npm_config_registry": "https://npm.example.invalid/",
    }
    assert build_environment({"PIP_EXTRA_INDEX_URL": "file:///opt/pypi/simple"}) == {}
