"""heroku.yml read as Heroku documents it, every mistake one line naming the key and its line."""

from __future__ import annotations

import pytest

from gitpaas import herokuyml
from gitpaas.errors import PushRefused
from gitpaas.herokuyml import DockerBuild, Process

FULL = """\
# Heroku's own example, nearly
setup:
  addons:
    - plan: heroku-postgresql
      as: DATABASE
    - heroku-redis
build:
  docker:
    web: Dockerfile
    worker:
      dockerfile: worker/Dockerfile
      target: runtime
  config:
    RAILS_ENV: production
    WORKERS: 4
release:
  command:
    - ./deployment-tasks.sh
  image: worker
run:
  web: bundle exec puma -C config/puma.rb
  worker:
    command:
      - python
      - my worker.py
    image: worker
  asset-syncer:
    command:
      - python asset-syncer.py
    image: worker
"""


def test_the_whole_manifest():
    manifest = herokuyml.parse(FULL)
    assert manifest.builds == (DockerBuild("web", "Dockerfile"), DockerBuild("worker", "worker/Dockerfile", "runtime"))
    assert manifest.build_of("worker").context == "worker" and manifest.build_of("web").context == ""
    assert manifest.build_args == {"RAILS_ENV": "production", "WORKERS": "4"}
    assert manifest.release_command == "./deployment-tasks.sh" and manifest.release_image == "worker"
    assert manifest.processes == {
        "web": Process("bundle exec puma -C config/puma.rb", "web"),
        "worker": Process("python 'my worker.py'", "worker"),  # a list of words is one command, quoted
        "asset-syncer": Process("python asset-syncer.py", "worker"),
    }
    assert manifest.addons == (("postgresql", "DATABASE"), ("redis", None))


def test_without_run_each_image_runs_its_own_cmd():
    manifest = herokuyml.parse("build:\n  docker:\n    web: app/Dockerfile\n    clock: clock/Dockerfile\n")
    assert manifest.processes == {"web": Process(None, "web"), "clock": Process(None, "clock")}
    assert manifest.release_command is None and manifest.addons == ()
    assert manifest.build_of("web").dockerfile == "app/Dockerfile"


def test_a_run_entry_without_an_image_of_its_own_runs_in_webs():
    manifest = herokuyml.parse("build:\n  docker:\n    web: Dockerfile\nrun:\n  worker: python worker.py\n")
    assert manifest.processes["worker"] == Process("python worker.py", "web")


@pytest.mark.parametrize("text, message", [
    ("build: [", "heroku.yml is not valid YAML: line 1 column 9: expected the node content"),
    ("- a list", "heroku.yml line 1: the file: expected a mapping of keys to values"),
    ("run:\n  web: x\n", "heroku.yml line 1: build.docker: name at least the web image's Dockerfile"),
    ("build:\n  languages:\n    - ruby\n", "heroku.yml line 3: build.languages: only Docker builds are supported"),
    ("build:\n  docker:\n    web: /etc/Dockerfile\n", "heroku.yml line 3: build.docker.web: '/etc/Dockerfile' is not a path"),
    ("build:\n  docker:\n    web: ../Dockerfile\n", "heroku.yml line 3: build.docker.web: '../Dockerfile' is not a path"),
    ("build:\n  docker:\n    web:\n      target: x\n",
     "heroku.yml line 4: build.docker.web: name its Dockerfile"),
    ("build:\n  docker:\n    web: Dockerfile\n    web: Dockerfile\n", "heroku.yml line 4: build.docker: 'web' is given twice"),
    ("build:\n  docker:\n    'we b': Dockerfile\n", "heroku.yml line 3: build.docker.we b: a process type is letters"),
    ("build:\n  docker:\n    web: Dockerfile\n  dockr: {}\n", "heroku.yml line 4: build: unknown key 'dockr'"),
    ("build:\n  docker:\n    web: Dockerfile\nrelease:\n  image: web\n",
     "heroku.yml line 5: release: give the release phase a command"),
    ("build:\n  docker:\n    web: Dockerfile\nrelease:\n  command: [./x]\n  image: worker\n",
     "heroku.yml line 6: release.image: 'worker' is not an image build.docker builds"),
    ("build:\n  docker:\n    web: Dockerfile\nrun:\n  worker:\n    command: [x]\n    image: jobs\n",
     "heroku.yml line 7: run.worker: it runs in the image of 'jobs', which build.docker does not build"),
    ("build:\n  docker:\n    web: Dockerfile\nrun:\n  web: []\n", "heroku.yml line 5: run.web: an empty list is no command"),
    ("build:\n  docker:\n    web: Dockerfile\nrun:\n  release: x\n", "heroku.yml line 5: run.release: the release phase"),
    ("build:\n  docker:\n    web: Dockerfile\n  config:\n    BAD-NAME: 1\n", "heroku.yml line 5: build.config.BAD-NAME"),
    ("build:\n  docker:\n    web: Dockerfile\nsetup:\n  addons:\n    - plan: mysql\n",
     "heroku.yml line 6: setup.addons entry 1: "),
    ("build:\n  docker:\n    web: 12\n", "heroku.yml line 3: build.docker.web: expected a non-empty string"),
])
def test_mistakes_name_the_key_and_the_line(text, message):
    with pytest.raises(PushRefused) as refused:
        herokuyml.parse(text)
    assert str(refused.value).startswith(message), str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_huge_manifest_is_refused_before_it_is_parsed():
    with pytest.raises(PushRefused, match="larger than 64 KB"):
        herokuyml.parse("build:\n  docker:\n    web: Dockerfile\n" + "#" * 70_000)


def test_yaml_tags_build_no_python_objects():
    with pytest.raises(PushRefused):
        herokuyml.parse("build: !!python/object/apply:os.system ['true']\n")


def test_anchors_and_aliases_are_refused_before_they_expand():
    # a few kilobytes of aliases would otherwise stand for a command of hundreds of megabytes
    blob = "x" * 30_000
    text = f"build:\n  docker:\n    web: Dockerfile\nrun:\n  web: &a {blob}\n  worker: [*a, *a, *a]\n"
    with pytest.raises(PushRefused) as refused:
        herokuyml.parse(text)
    assert str(refused.value) == "heroku.yml line 5: anchors and aliases (& and *) are not allowed in heroku.yml"


@pytest.mark.parametrize("text", ["[" * 30_000, "{a: " * 10_000, "build: " + "[" * 20 + "]" * 20])
def test_deep_nesting_is_one_line_not_a_recursion_error(text):
    with pytest.raises(PushRefused, match="nested more than 16 levels deep|not valid YAML"):
        herokuyml.parse(text)


def test_setup_config_and_the_images_some_process_runs_in():
    manifest = herokuyml.parse("setup:\n  config:\n    LANG: en_US.UTF-8\n    WORKERS: 2\nbuild:\n  docker:\n"
                               "    web: Dockerfile\n    tools: tools/Dockerfile\n    jobs: jobs/Dockerfile\n"
                               "run:\n  jobs:\n    command: [./work]\n    image: web\n")
    assert manifest.config == {"LANG": "en_US.UTF-8", "WORKERS": "2"}
    # tools is built for nothing unless a process runs in it: jobs runs in web's image
    assert manifest.images_used == {"web", "tools"}
