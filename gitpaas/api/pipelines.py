"""The Platform API's pipelines, pipeline couplings, pipeline promotions (and their targets), review
apps and review-app config, in Heroku's shapes: thin over ``gitpaas.pipelines`` and
``gitpaas.reviewapps``, what the CLI calls too.

A promotion is answered as soon as it is checked and recorded (``pending``), its targets ``pending``
with ``release: null``; each target's release follows in a thread of its own, as on Heroku, and the
targets' statuses say how each went. The official Heroku CLI polls them (``pipelines:promote``).
"""

from __future__ import annotations

import logging
import threading
from typing import Annotated, Any, Literal, Optional

from fastapi import APIRouter, Body, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from gitpaas import pipelines, reviewapps
from gitpaas.api.core import (
    JsonRoute,
    Strict,
    current_user,
    gitpaas_variant,
    platform_of,
    settings_of,
    story_output,
    visible_app,
)
from gitpaas.errors import InvalidParams, NotFound
from gitpaas.identity import Actor, account_id
from gitpaas.notify.event import hide_server_paths
from gitpaas.appview import app_stacks, current_release
from gitpaas.settings import Settings
from gitpaas.shapes import GENERATION, app_json, derived_id
from gitpaas.store.pipelines import STAGES, Coupling, Pipeline, PipelineStore, Promotion, Target

log = logging.getLogger(__name__)
router = APIRouter(route_class=JsonRoute)
User = Annotated[str, Depends(current_user)]


# --- shapes ------------------------------------------------------------------------------------

def pipeline_json(pipeline: Pipeline) -> dict[str, Any]:
    return {"created_at": pipeline.created_at, "id": pipeline.id, "name": pipeline.name,
            "owner": {"id": account_id(pipeline.owner), "type": "user"} if pipeline.owner else None,
            "updated_at": pipeline.updated_at, "generation": GENERATION}


def coupling_json(pipeline: Pipeline, coupling: Coupling) -> dict[str, Any]:
    return {"app": {"id": coupling.app_id, "name": coupling.app}, "created_at": coupling.created_at, "id": coupling.id,
            "pipeline": {"id": pipeline.id, "name": pipeline.name}, "stage": coupling.stage,
            "updated_at": coupling.updated_at}


def promotion_json(promotion: Promotion) -> dict[str, Any]:
    return {"created_at": promotion.created_at, "id": promotion.id, "pipeline": {"id": promotion.pipeline_id},
            "source": {"app": {"id": promotion.source["app"]["id"]},
                       "release": {"id": promotion.source["release"]["id"]}},
            "status": promotion.status, "updated_at": promotion.updated_at}


def target_json(promotion: Promotion, target: Target, settings: Settings) -> dict[str, Any]:
    return {"app": {"id": target.app_id}, "error_message": target.error_message and hide_server_paths(
                target.error_message, settings.home), "id": target.id,
            "pipeline_promotion": {"id": promotion.id},
            "release": {"id": target.release["id"]} if target.release else None, "status": target.status}


def review_app_json(platform, app) -> dict[str, Any]:
    review = app.review or {}
    return {"app": {"id": app.id}, "app_setup": None, "branch": review.get("branch"), "created_at": app.created_at,
            "creator": {}, "error_status": None, "fork_repo": None, "id": derived_id(app.id, "review-app"),
            "message": None, "pipeline": {"id": review.get("pipeline")}, "pr_number": None,
            "status": "created" if app.current_release else "creating",
            "updated_at": app.updated_at, "wait_for_ci": False}


def review_config_json(platform, pipeline: Pipeline) -> dict[str, Any]:
    review = pipeline.review
    parent = platform.apps.get(review.app) if review.app and platform.apps.exists(review.app) else None
    # GitHub's repository ids are numbers: the parent app's repository gets one derived from its id
    repo_id = int(derived_id(parent.id if parent else pipeline.id, "repository").replace("-", "")[:8], 16)
    return {"repo": {"id": repo_id},
            "automatic_review_apps": review.enabled, "deploy_target": None,
            "destroy_stale_apps": review.autodestroy, "stale_days": review.stale_days, "pipeline_id": pipeline.id,
            "wait_for_ci": False, "base_name": review.app,
            # gitpaas's: the app whose branches get review apps
            "app": {"id": parent.id, "name": parent.name} if parent else None}


def _pipeline(request: Request, user: str, identity: str) -> Pipeline:
    return pipelines.get(platform_of(request), Actor(user), identity)


# --- pipelines ---------------------------------------------------------------------------------

class PipelineCreate(Strict):
    name: str = Field(max_length=30)
    owner: Optional[dict] = None
    generation: Optional[dict] = None  # the Heroku CLI sends one; every gitpaas pipeline is "cedar"


@router.get("/pipelines")
def pipelines_list(request: Request, user: User) -> list[dict]:
    """Every pipeline the caller sees; ``?eq[name]=NAME`` keeps the one with that name (the CLI's lookup)."""
    wanted = request.query_params.get("eq[name]")
    platform = platform_of(request)
    shape = (lambda p: pipelines.record(platform, p, Actor(user))) if gitpaas_variant(request) else pipeline_json
    return [shape(p) for p in pipelines.visible(platform, Actor(user)) if wanted is None or p.name == wanted]


@router.post("/pipelines", status_code=201)
def pipelines_create(request: Request, user: User, body: PipelineCreate) -> dict:
    if body.owner and body.owner.get("type") == "team":
        raise InvalidParams("gitpaas has no teams: a pipeline belongs to the account that creates it")
    platform = platform_of(request)
    created = pipelines.create(platform, Actor(user), body.name)
    return pipelines.record(platform, created, Actor(user)) if gitpaas_variant(request) else pipeline_json(created)


@router.get("/pipelines/{pipeline}")
def pipelines_info(request: Request, user: User, pipeline: str) -> dict:
    found = _pipeline(request, user, pipeline)
    return pipelines.record(platform_of(request), found, Actor(user)) if gitpaas_variant(request) else pipeline_json(found)


@router.delete("/pipelines/{pipeline}")
def pipelines_delete(request: Request, user: User, pipeline: str) -> dict:
    return pipeline_json(reviewapps.destroy_pipeline(platform_of(request), Actor(user), pipeline))


# --- couplings ---------------------------------------------------------------------------------

class CouplingCreate(Strict):
    app: str = Field(max_length=64)
    pipeline: str = Field(max_length=64)
    stage: Literal["test", "review", "development", "staging", "production"]


class CouplingUpdate(Strict):
    stage: Literal["test", "review", "development", "staging", "production"]


def _stage(stage: str) -> str:
    if stage not in STAGES:
        raise InvalidParams(f"gitpaas has no {stage} stage (it has {', '.join(STAGES)})")
    return stage


@router.get("/pipelines/{pipeline}/pipeline-couplings")
def pipeline_couplings(request: Request, user: User, pipeline: str) -> list[dict]:
    found = _pipeline(request, user, pipeline)
    return [coupling_json(found, c) for c in found.couplings]


@router.get("/pipeline-couplings")
@router.get("/users/~/pipeline-couplings")
def couplings_list(request: Request, user: User) -> list[dict]:
    return [coupling_json(p, c) for p in pipelines.visible(platform_of(request), Actor(user)) for c in p.couplings]


@router.post("/pipeline-couplings", status_code=201)
def couplings_create(request: Request, user: User, body: CouplingCreate) -> dict:
    platform = platform_of(request)
    app = visible_app(platform, user, body.app)
    found = _pipeline(request, user, body.pipeline)
    coupling = pipelines.couple(platform, Actor(user), found.id, app.name, _stage(body.stage))
    return coupling_json(PipelineStore(platform.settings).get(found.id), coupling)


def _coupling(request: Request, user: str, identity: str) -> tuple[Pipeline, Coupling]:
    platform = platform_of(request)
    for pipeline in pipelines.visible(platform, Actor(user)):
        for coupling in pipeline.couplings:
            if coupling.id == identity:
                return pipeline, coupling
    raise NotFound("Couldn't find that pipeline coupling.")


@router.get("/pipeline-couplings/{coupling}")
def couplings_info(request: Request, user: User, coupling: str) -> dict:
    return coupling_json(*_coupling(request, user, coupling))


@router.patch("/pipeline-couplings/{coupling}")
def couplings_update(request: Request, user: User, coupling: str, body: CouplingUpdate) -> dict:
    _, found = _coupling(request, user, coupling)
    pipeline, moved = pipelines.move(platform_of(request), Actor(user), found.app, _stage(body.stage))
    return coupling_json(pipeline, moved)


@router.delete("/pipeline-couplings/{coupling}")
def couplings_delete(request: Request, user: User, coupling: str) -> dict:
    _, found = _coupling(request, user, coupling)
    pipeline, removed = pipelines.uncouple(platform_of(request), Actor(user), found.app)
    return coupling_json(pipeline, removed)


@router.get("/apps/{app}/pipeline-couplings")
def app_coupling(request: Request, user: User, app: str) -> dict:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    pipeline = pipelines.pipeline_of(platform, found.name)
    if pipeline is None:
        raise NotFound(f"{found.name} is not in a pipeline.")
    return coupling_json(pipeline, pipeline.coupling(found.name))


class AppFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: list[str] = Field(default_factory=list, max_length=1000)


class AppsFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    in_: AppFilter = Field(alias="in")


@router.post("/filters/apps")
def filter_apps(request: Request, user: User, body: AppsFilter) -> list[dict]:
    """The apps with these ids that the caller may use (how the Heroku CLI lists a pipeline's apps)."""
    platform = platform_of(request)
    wanted, actor = set(body.in_.id), Actor(user)
    found = []
    for app in platform.apps.list():
        if app.id in wanted and actor.may_use(app.owner, app.collaborators):
            current = current_release(platform, app.name)
            found.append(app_json(app, platform.settings, "", current.updated_at if current else None,
                                  app_stacks(app, current)))
    return found


# --- promotions --------------------------------------------------------------------------------

class PromotionRef(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(max_length=64)


class PromotionSourceApp(BaseModel):
    model_config = ConfigDict(extra="ignore")
    app: PromotionRef
    release: Optional[PromotionRef] = None


class PromotionTarget(BaseModel):
    model_config = ConfigDict(extra="ignore")
    app: PromotionRef


class PromotionCreate(Strict):
    pipeline: PromotionRef
    source: PromotionSourceApp
    targets: list[PromotionTarget] = Field(max_length=100)


@router.post("/pipeline-promotions", status_code=201)
def promotions_create(request: Request, user: User, body: PromotionCreate) -> dict:
    """Check and record the promotion; release to its targets in the background."""
    platform, actor = platform_of(request), Actor(user)
    pipeline = _pipeline(request, user, body.pipeline.id)
    source = visible_app(platform, user, body.source.app.id)
    if pipeline.coupling(source.name) is None:
        raise InvalidParams(f"{source.name} is not in pipeline {pipeline.name}")
    if body.source.release is not None:
        current = platform.apps.releases(source.name).get(source.current_release) if source.current_release else None
        if current is None or body.source.release.id not in (current.id, f"v{current.version}", str(current.version)):
            raise InvalidParams(f"gitpaas promotes an app's current release; {body.source.release.id} is not "
                                f"{source.name}'s")
    targets = [visible_app(platform, user, target.app.id).name for target in body.targets]
    plan = pipelines.begin_promotion(platform, actor, source.name, targets or None)

    def run() -> None:
        try:
            pipelines.run_promotion(platform, actor, plan, lambda target, release: story_output(platform, release))
        except Exception:  # noqa: BLE001 — logged; each target's record says what it reached
            log.exception("promotion %s failed unexpectedly", plan.promotion.id)

    answer = promotion_record(plan.promotion, platform.settings.home) if gitpaas_variant(request) else promotion_json(plan.promotion)
    threading.Thread(target=run, name=f"gitpaas-promotion-{plan.promotion.id[:8]}", daemon=True).start()
    return answer


def _promotion(request: Request, user: str, identity: str) -> Promotion:
    platform = platform_of(request)
    promotion = PipelineStore(platform.settings).promotion(identity)
    _pipeline(request, user, promotion.pipeline_id)  # seen only by who sees its pipeline
    return promotion


@router.get("/pipeline-promotions/{promotion}")
def promotions_info(request: Request, user: User, promotion: str) -> dict:
    found = _promotion(request, user, promotion)
    return promotion_record(found, settings_of(request).home) if gitpaas_variant(request) else promotion_json(found)


def promotion_record(promotion: Promotion, home) -> dict[str, Any]:
    """gitpaas's variant: what the gitpaas CLI shows of a promotion — its source release and each
    target by name, with its status and release."""
    source = promotion.source
    return {"id": promotion.id, "status": promotion.status, "pipeline": promotion.pipeline,
            "source": {"app": source["app"]["name"], "version": source["release"]["version"],
                       "slug": source["release"].get("slug"), "commit": source["release"].get("commit")},
            "targets": [hide_server_paths(pipelines.target_record(target), home) for target in promotion.targets]}


@router.get("/apps/{app}/pipeline-diff")
def pipeline_diff(request: Request, user: User, app: str) -> dict:
    """gitpaas's: the commits between the app's current release and each app of the next stage's."""
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    source, differences = pipelines.diff(platform, Actor(user), found.name)
    return {"source_commit": source, "differences": [pipelines.difference_record(d) for d in differences]}


@router.get("/pipeline-promotions/{promotion}/promotion-targets")
def promotion_targets(request: Request, user: User, promotion: str) -> list[dict]:
    found = _promotion(request, user, promotion)
    return [target_json(found, target, settings_of(request)) for target in found.targets]


# --- review apps -------------------------------------------------------------------------------

@router.get("/pipelines/{pipeline}/review-apps")
def review_apps_list(request: Request, user: User, pipeline: str) -> list[dict]:
    platform = platform_of(request)
    found = _pipeline(request, user, pipeline)
    shape = reviewapps.record if gitpaas_variant(request) else review_app_json
    return [shape(platform, app) for app in reviewapps.of_pipeline(platform, found)]


@router.get("/review-apps/{review_app}")
def review_apps_info(request: Request, user: User, review_app: str) -> dict:
    platform = platform_of(request)
    for pipeline in pipelines.visible(platform, Actor(user)):
        for app in reviewapps.of_pipeline(platform, pipeline):
            if derived_id(app.id, "review-app") == review_app:
                return review_app_json(platform, app)
    raise NotFound("Couldn't find that review app.")


@router.get("/apps/{app}/review-app")
def app_review_app(request: Request, user: User, app: str) -> dict:
    platform = platform_of(request)
    found = visible_app(platform, user, app)
    if not found.review:
        raise NotFound(f"{found.name} is not a review app.")
    return review_app_json(platform, found)


@router.post("/review-apps", status_code=201)
def review_apps_create(request: Request, user: User, body: dict = Body(default=None)) -> dict:
    raise InvalidParams("gitpaas makes a review app when its branch is pushed: `git push <remote> BRANCH` to the "
                        "app whose branches get review apps (`gitpaas reviewapps:enable -p PIPELINE -a APP`)")


class ReviewConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")  # the Heroku CLI also sends pipeline and repo
    automatic_review_apps: Optional[bool] = None
    destroy_stale_apps: Optional[bool] = None
    stale_days: Optional[int] = Field(default=None, ge=1, le=30)
    wait_for_ci: Optional[bool] = None
    base_name: Optional[str] = Field(default=None, max_length=30)  # (Heroku's name prefix: gitpaas's is the app's)
    #: gitpaas's: the app whose branches get review apps (default: the pipeline's one non-review app)
    app: Optional[str] = Field(default=None, max_length=64)


def _parent(platform, user: str, pipeline: Pipeline, body: ReviewConfig) -> str:
    """The app whose branches get review apps: named (gitpaas's ``app``, or ``base_name``), the one
    already chosen, else the one app at the pipeline's earliest stage (the Heroku CLI names none)."""
    named = body.app or pipeline.review.app
    if named:
        return visible_app(platform, user, named).name
    for stage in STAGES[1:]:
        candidates = pipeline.apps_at(stage)
        if len(candidates) == 1:
            return candidates[0]
        if candidates:
            break
    raise InvalidParams(f"say which app's branches get review apps: `gitpaas reviewapps:enable -p {pipeline.name} "
                        "-a APP`, or send \"app\"")


@router.get("/pipelines/{pipeline}/review-app-config")
def review_config_info(request: Request, user: User, pipeline: str) -> dict:
    return review_config_json(platform_of(request), _pipeline(request, user, pipeline))


@router.post("/pipelines/{pipeline}/review-app-config")
@router.patch("/pipelines/{pipeline}/review-app-config")
def review_config_enable(request: Request, user: User, pipeline: str, body: ReviewConfig) -> dict:
    """POST enables review apps; PATCH changes the fields it names — one turned on enables them too
    (the Heroku CLI's ``reviewapps:enable --autodestroy``), ``automatic_review_apps: false`` disables
    them (gitpaas deploys review apps only automatically, on each push), another turned off changes
    just that (``reviewapps:disable --no-autodestroy``)."""
    platform, actor = platform_of(request), Actor(user)
    found = _pipeline(request, user, pipeline)
    if body.automatic_review_apps is False:
        return review_config_json(platform, reviewapps.disable(platform, actor, found.id))
    turned_on = True in (body.automatic_review_apps, body.destroy_stale_apps, body.wait_for_ci)
    if request.method == "POST" or turned_on or found.review.enabled:
        autodestroy = found.review.autodestroy if body.destroy_stale_apps is None else body.destroy_stale_apps
        return review_config_json(platform, reviewapps.enable(platform, actor, found.id, _parent(
            platform, user, found, body), autodestroy=autodestroy, stale_days=body.stale_days))
    return review_config_json(platform, reviewapps.set_autodestroy(platform, actor, found.id, body.destroy_stale_apps,
                                                                   body.stale_days))


@router.delete("/pipelines/{pipeline}/review-app-config")
def review_config_disable(request: Request, user: User, pipeline: str) -> dict:
    platform = platform_of(request)
    return review_config_json(platform, reviewapps.disable(platform, Actor(user), _pipeline(request, user, pipeline).id))


# --- the review stage's config vars (Heroku's pipeline-config-var) -----------------------------

@router.get("/pipelines/{pipeline}/stage/{stage}/config-vars")
def review_config_vars(request: Request, user: User, pipeline: str, stage: str) -> dict:
    _review_stage(stage)
    return reviewapps.config_of(platform_of(request), Actor(user), _pipeline(request, user, pipeline).id)


@router.patch("/pipelines/{pipeline}/stage/{stage}/config-vars")
def review_config_vars_update(request: Request, user: User, pipeline: str, stage: str,
                              body: dict[str, Optional[str]]) -> dict:
    """Set (a string) or unset (null) the config vars each new review app gets."""
    _review_stage(stage)
    found = _pipeline(request, user, pipeline)
    set_values = {key: value for key, value in body.items() if value is not None}
    unset = [key for key, value in body.items() if value is None]
    return reviewapps.set_config(platform_of(request), Actor(user), found.id, set_values, unset)


def _review_stage(stage: str) -> None:
    if stage != "review":
        raise NotFound("Only the review stage has config vars of its own (the other stages' apps have theirs).")
