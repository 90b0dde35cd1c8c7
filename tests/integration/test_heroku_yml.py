"""heroku.yml, Heroku's manifest for Docker apps: an image per process type, the release phase in
the image it names, setup.addons — pushed with git, fetched over HTTP."""

from __future__ import annotations

from gitpaas import labels
from harness import wait_for


def test_a_heroku_yml_app_builds_an_image_per_process_type(home, docker_client):
    home.create_app("manifest")
    push = home.push("manifest", "heroku-yml")
    assert push.returncode == 0, push.stderr
    said = push.stderr
    assert "heroku.yml: web, worker, release (the Procfile is not read)" in said
    assert "-----> Building on the trixie stack with heroku.yml" in said
    assert "Building web's image from Dockerfile" in said and "Building worker's image from worker/Dockerfile" in said
    assert "-----> heroku.yml asks for heroku-redis" in said  # setup.addons, before the release phase
    assert "-----> heroku.yml sets FROM_SETUP" in said  # setup.config, on the first deploy
    assert "release phase in the worker image (web's files here: no)" in said

    # web runs heroku.yml's run command in the web image, built with build.config; the add-on is attached
    assert home.get("manifest").text == ("web built with build.config; config from setup.config; redis attached; "
                                         "started by heroku.yml run; worker image here: False\n")
    record = home.release("manifest", 1)
    repository = record["image"].rsplit(":", 1)[0]
    assert record["process_images"] == {"worker": f"{repository}:v1-worker", "release": f"{repository}:v1-release"}
    assert record["process_types"] == {"web": "python3 /app/web.py", "worker": "python3 /worker/worker.py",
                                       "release": "/worker/release.sh"}

    # the worker runs in its own image
    home.gitpaas("ps:scale", "worker=1", "-a", "manifest")
    workers = docker_client.containers.list(filters=labels.filters(
        {labels.HOME: str(home.path), labels.APP: "manifest", labels.PROCESS_TYPE: "worker"}))
    assert len(workers) == 1
    assert docker_client.images.get(f"{repository}:v1-worker").id == workers[0].image.id
    wait_for(lambda: "worker alive in the worker image" in workers[0].logs().decode(), "the worker's output")

    # a config change and a rollback carry every image of the release
    home.gitpaas("config:set", "GREETING=hi", "-a", "manifest")
    assert home.release("manifest", 2)["process_images"]["worker"] == f"{repository}:v2-worker"
    home.gitpaas("rollback", "v1", "-a", "manifest")
    assert home.release("manifest", 3)["process_images"] == {"worker": f"{repository}:v3-worker",
                                                             "release": f"{repository}:v3-release"}
    assert docker_client.images.get(f"{repository}:v3-worker").id == workers[0].image.id
    assert home.get("manifest").status_code == 200

    # no build tag is left behind
    tags = {tag for image in home.docker_objects(docker_client, "manifest")["images"] for tag in image.tags}
    assert not [tag for tag in tags if ":build-" in tag], tags


def test_a_mistake_in_heroku_yml_names_the_key_and_the_line(home):
    home.create_app("typo")
    manifest = "build:\n  docker:\n    web: Dockerfile\nrun:\n  worker:\n    command: [x]\n    image: jobs\n"
    push = home.push("typo", "heroku-yml", files={"heroku.yml": manifest})
    assert push.returncode != 0
    assert ("heroku.yml line 7: run.worker: it runs in the image of 'jobs', which build.docker does not build"
            in push.stderr)
    assert "Traceback" not in push.stderr
