from __future__ import annotations

import re
from pathlib import Path

import pytest

from gitpaas.errors import InvalidAppName, UsageError
from gitpaas.router.render import (
    Balancer,
    balanced_backends,
    render_app_config,
    render_main_config,
    renumbered,
    unbalanced,
)
from gitpaas.settings import Settings


def test_app_config_balances_across_every_backend():
    text = render_app_config(
        "shop", ["shop.example.com", "www.shop.test"], [("127.0.0.1", 32001), ("127.0.0.1", 32002)], port=8080
    )

    assert re.findall(r"^\s*server (\S+) max_fails", text, re.MULTILINE) == ["127.0.0.1:32001", "127.0.0.1:32002"]
    assert "server_name shop.example.com www.shop.test;" in text
    assert "listen 8080;" in text
    assert "proxy_pass http://gitpaas-app-shop;" in text
    assert "keepalive 16;" in text
    assert "proxy_http_version 1.1;" in text
    assert "proxy_set_header Connection $connection_upgrade;" in text
    assert "proxy_set_header X-Request-Id $gitpaas_request_id;" in text
    assert "proxy_next_upstream error timeout;" in text
    assert "return 503" not in text


def test_app_config_without_backends_answers_503():
    text = render_app_config("shop", ["shop.localhost"], [], port=80)

    assert "upstream" not in text
    assert "proxy_pass" not in text
    assert 'return 503 "App shop has no web process running.\n";' in text
    assert "server_name shop.localhost;" in text


def test_app_config_normalises_hosts_and_formats_ipv6_backends():
    text = render_app_config("shop", ["Shop.Localhost.", "shop.localhost", "*.shop.test"], [("::1", 9000)], port=80)

    assert "server_name shop.localhost *.shop.test;" in text
    assert "server [::1]:9000 " in text


@pytest.mark.parametrize("host", ["evil;host", "a{b}", "two words", "", 'quo"te', "$host", "under_score"])
def test_app_config_rejects_hosts_that_could_break_the_config(host):
    with pytest.raises(UsageError, match="host"):
        render_app_config("shop", [host], [], port=80)


@pytest.mark.parametrize("host", ["-shop.test", "shop-.test", "a" * 64 + ".test", ".".join(["a" * 63] * 4)])
def test_app_config_rejects_hosts_dns_would_not_resolve(host):
    with pytest.raises(UsageError, match="invalid host name"):
        render_app_config("shop", [host], [], port=80)


def test_app_config_needs_a_host():
    with pytest.raises(UsageError, match="at least one host"):
        render_app_config("shop", [], [], port=80)


@pytest.mark.parametrize("backend", [("127.0.0.1", 0), ("127.0.0.1", 70000), ("127.0.0.1", "80"), ("bad host", 80)])
def test_app_config_rejects_bad_backends(backend):
    with pytest.raises(UsageError, match="backend"):
        render_app_config("shop", ["shop.localhost"], [backend], port=80)


@pytest.mark.parametrize("app", ["../etc", "Shop", "1shop", "a" * 31])
def test_app_config_rejects_bad_app_names(app):
    with pytest.raises(InvalidAppName):
        render_app_config(app, ["shop.localhost"], [], port=80)


def test_app_config_refuses_an_app_name_ending_with_a_dash_as_heroku_does():
    with pytest.raises(InvalidAppName):
        render_app_config("shop-", ["shop.localhost"], [], port=80)


def test_app_config_takes_a_30_character_app_name_with_inner_dashes():
    name = "my-shop-" + "a" * 22

    text = render_app_config(name, ["shop.localhost"], [("127.0.0.1", 80)], port=80)

    assert f"upstream gitpaas-app-{name} {{" in text


def test_main_config_keeps_everything_inside_the_router_dir(tmp_path):
    settings = Settings(home=tmp_path / "home", http_port=18080)
    text = render_main_config(settings)
    router = str(settings.router_dir)

    for directive in (
        "pid",
        "error_log",
        "access_log",
        *(f"{kind}_temp_path" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")),
    ):
        match = re.search(rf"^\s*{directive} \"([^\"]+)\"", text, re.MULTILINE)
        assert match, directive
        assert match.group(1).startswith(router + "/"), directive
    assert "listen 18080 default_server;" in text
    assert f'include "{router}/apps/*.conf";' in text
    assert "worker_processes 1;" in text
    assert "daemon on;" in text
    assert "server_names_hash_bucket_size 128;" in text
    assert "client_max_body_size 100m;" in text
    assert "map $http_upgrade $connection_upgrade" in text
    assert "user " not in text


def test_main_config_answers_unknown_hosts_with_the_gitpaas_page(tmp_path):
    text = render_main_config(Settings(home=tmp_path))

    assert "return 404 " in text
    assert "No app is deployed at this address" in text
    assert "gitpaas apps" in text


def test_main_config_can_name_worker_user_and_explicit_app_files(tmp_path):
    files = [Path("/x/apps/a.conf"), Path("/x/apps/.b.conf.candidate")]
    text = render_main_config(Settings(home=tmp_path), worker_user="nobody nogroup", app_includes=files)

    assert "user nobody nogroup;" in text
    assert 'include "/x/apps/a.conf";' in text
    assert 'include "/x/apps/.b.conf.candidate";' in text
    assert "*.conf" not in text


def test_main_config_refuses_a_home_nginx_would_misread():
    with pytest.raises(UsageError):
        render_main_config(Settings(home=Path("/srv/$HOME/gitpaas")))


def test_balanced_app_config_names_its_addresses_to_the_balancer_not_to_nginx():
    text = render_app_config("shop", ["shop.localhost"], [("127.0.0.1", 32001), ("::1", 9000)], port=80,
                             balanced=True, number=17)

    assert 'require("gitpaas_balancer").balance("shop", { "127.0.0.1:32001", "[::1]:9000" }, 17)' in text
    assert "max_fails" not in text
    assert "keepalive 16;" in text and "keepalive_timeout 2s;" in text
    found = balanced_backends(text)
    assert (found.backends, found.number) == ("127.0.0.1:32001 [::1]:9000", 17)
    other = balanced_backends(render_app_config("shop", ["shop.localhost"], [("127.0.0.2", 5)], port=80,
                                                balanced=True, number=18))
    assert (other.structure, other.backends) == (found.structure, "127.0.0.2:5")  # only the list and number differ
    assert balanced_backends(renumbered(text, 40)).number == 40
    moved = render_app_config("shop", ["shop.localhost", "www.shop.localhost"], [("127.0.0.2", 5)], port=80,
                              balanced=True)
    assert balanced_backends(moved).structure != found.structure


def test_an_unbalanced_file_is_the_one_rendered_without_the_balancer():
    backends = [("127.0.0.1", 32001), ("::1", 9000)]
    balanced = render_app_config("shop", ["shop.localhost"], backends, port=80, balanced=True, number=3)

    assert unbalanced(balanced) == render_app_config("shop", ["shop.localhost"], backends, port=80)
    plain = render_app_config("shop", ["shop.localhost"], [], port=80)
    assert unbalanced(plain) == plain


def test_backends_with_names_stay_nginx_servers_which_nginx_resolves():
    text = render_app_config("shop", ["shop.localhost"], [("127.0.0.1", 1), ("web-1.internal", 5000)], port=80,
                             balanced=True)

    assert "balancer_by_lua" not in text
    assert "server web-1.internal:5000 max_fails=1" in text
    assert balanced_backends(text) is None
    assert balanced_backends(render_app_config("shop", ["shop.localhost"], [], port=80, balanced=True)) is None


def test_an_address_with_a_zone_is_refused():
    with pytest.raises(UsageError, match="zone"):
        render_app_config("shop", ["shop.localhost"], [('fe80::1%a"b})', 80)], port=80, balanced=True)


def test_main_config_with_the_balancer_loads_lua_and_guards_its_endpoint(tmp_path):
    settings = Settings(home=tmp_path)
    balancer = Balancer(modules=("/m/ndk.so", "/m/lua.so"), lua_dir=f"{settings.router_dir}/lua", token="ab" * 16)
    text = render_main_config(settings, balancer=balancer)

    assert text.index('load_module "/m/ndk.so";') < text.index('load_module "/m/lua.so";') < text.index("events {")
    assert f'lua_package_path "{settings.router_dir}/lua/?.lua;;";' in text
    assert 'init_by_lua_block { require("gitpaas_balancer") }' in text
    endpoint = text[text.index("location = /__gitpaas/backends"):]
    assert (endpoint.index("allow 127.0.0.1;") < endpoint.index("deny all;") < endpoint.index("$http_x_forwarded_proto")
            < endpoint.index(f'set_backends("{"ab" * 16}")'))
    assert "load_module" not in render_main_config(settings)
    with pytest.raises(ValueError, match="hex"):
        render_main_config(settings, balancer=Balancer(modules=(), lua_dir="/x", token='") os.exit() ("'))
