"""Rollback drills: is the version a family would fall back to still able to run?

(a) **warm**: an HTTP GET of the target's `health_url` answers 2xx within
ROLLOUT_DRILL_TIMEOUT_SECONDS. Outbound rules are reviews' callback rules
(reviews/callback_urls.py: public addresses only, checked on the addresses
connected to; ROLLOUT_DRILL_ALLOWED_NETWORKS allows more), no proxies from the
environment, redirects followed only on the same host (at most 3), and at most
ROLLOUT_DRILL_BODY_MAX_BYTES of the body read.
(b) **works**: a share of the family's traffic (ROLLOUT_DRILL_SHARE percent,
deployments.routing) goes to the target until ROLLOUT_DRILL_MIN_TASKS finish or
ROLLOUT_DRILL_WINDOW_HOURS pass; its failure rate and p95 are compared with the
live version's over the same window under the rollout analysis thresholds.
A target that is itself the live version (it carries the family's traffic)
passes (b) on that traffic's figures against themselves, so only (a) can fail it.

Each result is stored, shown and on the audit chain (`drill.<state>`, subject
`drill:<id>`). A failed one mails the operators (a job), shows on the dashboard
and opens a committee case (kind `rollout`).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.chain import audit_append
from core.jobs import enqueue_on_commit
from deployments import figures, routing
from deployments.models import ModelVersion, RollbackDrill, VersionStatus
from deployments.routing import drill_refusal, human_age, last_finished  # noqa: F401 (read here, kept public)
from reviews import callback_urls
from reviews import services as review_services

logger = logging.getLogger(__name__)

CASE_KIND = "rollout"
MAX_REDIRECTS = 3


def warm_check(url: str) -> dict:
    """GET `url` under the outbound rules: {"ok", "status", "latency_ms", "error"}."""
    if not url:
        return {"ok": False, "status": None, "latency_ms": None, "error": "the version has no health_url"}
    networks = tuple(settings.ROLLOUT_DRILL_ALLOWED_NETWORKS)
    timeout = settings.ROLLOUT_DRILL_TIMEOUT_SECONDS
    cap = settings.ROLLOUT_DRILL_BODY_MAX_BYTES
    started = time.monotonic()
    session = callback_urls.session(networks)
    host = urlsplit(url).hostname
    try:
        for _ in range(MAX_REDIRECTS + 1):
            callback_urls.check_url(url, networks)
            left = timeout - (time.monotonic() - started)
            if left <= 0:
                raise requests.Timeout("no answer in time")
            with session.get(url, timeout=left, allow_redirects=False, stream=True) as response:
                status = response.status_code
                if status in (301, 302, 303, 307, 308) and response.headers.get("Location"):
                    url = urljoin(url, response.headers["Location"])
                    if urlsplit(url).hostname != host:
                        return _warm(False, status, started, f"redirected to another host ({urlsplit(url).hostname})")
                    continue
                read = 0
                for chunk in response.iter_content(8192):
                    read += len(chunk)
                    if read >= cap or time.monotonic() - started > timeout:
                        break
                if time.monotonic() - started > timeout:
                    return _warm(False, status, started, f"no complete answer within {timeout:g} s")
                if 200 <= status < 300:
                    return _warm(True, status, started, "")
                return _warm(False, status, started, f"answered HTTP {status}")
        return _warm(False, None, started, f"more than {MAX_REDIRECTS} redirects")
    except callback_urls.CallbackUrlRefused as exc:
        return _warm(False, None, started, f"refused: {exc}")
    except requests.Timeout:
        return _warm(False, None, started, f"no answer within {timeout:g} s")
    except requests.RequestException as exc:
        return _warm(False, None, started, f"unreachable: {type(exc).__name__}")
    finally:
        session.close()


def _warm(ok: bool, status, started: float, error: str) -> dict:
    return {"ok": ok, "status": status, "latency_ms": int((time.monotonic() - started) * 1000), "error": error}


def drill_run(*, family: str, target: ModelVersion | None = None, by: str = "system", now=None) -> RollbackDrill:
    """Drill `target` (default: the family's rollback target, else its live version).
    The warm check runs first, outside any transaction; a failure ends the drill
    at once. Then the works part: finished now when the target is live, else it
    runs (routing sends it the drill share) until `drill_evaluate` decides."""
    now = now or timezone.now()
    target = target or routing.rollback_target(family) or routing.live_version(family)
    if target is None:
        raise ValueError(f"family {family!r} has no approved version to drill")
    if routing.running_drill(family) is not None:
        raise ValueError(f"a drill of family {family!r} is running already")
    warm = warm_check(target.health_url)
    live = routing.live_version(family)
    drill = RollbackDrill(
        family=family,
        target=target,
        live=live,
        warm_ok=warm["ok"],
        warm_status=warm["status"],
        warm_latency_ms=warm["latency_ms"],
        warm_error=warm["error"][:2000],
        share=settings.ROLLOUT_DRILL_SHARE,
        started_at=now,
        deadline=now + timedelta(hours=settings.ROLLOUT_DRILL_WINDOW_HOURS),
        by=by[:200],
    )
    with transaction.atomic():
        if target.status != VersionStatus.APPROVED:
            return _finish(drill, RollbackDrill.State.FAIL, f"the target is {target.status}, not approved", now=now)
        if not warm["ok"]:
            return _finish(drill, RollbackDrill.State.FAIL, f"warm check failed: {warm['error']}", now=now)
        if live is None or live.pk == target.pk:
            since = now - timedelta(hours=settings.ROLLOUT_DRILL_WINDOW_HOURS)
            stats = figures.window_stats(target.ai_model, since, now)
            drill.figures = {"target": stats, "note": "the target is the live version: its own traffic"}
            return _finish(
                drill, RollbackDrill.State.PASS, f"warm (HTTP {warm['status']} in {warm['latency_ms']} ms)", now=now
            )
        try:
            with transaction.atomic():
                drill.save()
        except IntegrityError:
            raise ValueError(f"a drill of family {family!r} is running already") from None
        _chain(drill, "started")
    return drill


def drill_evaluate(*, drill_id: int, now=None) -> RollbackDrill | None:
    """A running drill's works part: pass or fail once enough target tasks finished,
    inconclusive at its deadline with too few; None while it keeps running."""
    now = now or timezone.now()
    with transaction.atomic():
        drill = (
            RollbackDrill.objects.select_for_update(of=("self",))
            .select_related("target", "live")
            .filter(pk=drill_id)
            .first()
        )
        if drill is None or drill.state != RollbackDrill.State.RUNNING:
            return None
        target = figures.window_stats(drill.target.ai_model, drill.started_at, now)
        live = figures.window_stats(drill.live.ai_model, drill.started_at, now) if drill.live else None
        minimum = settings.ROLLOUT_DRILL_MIN_TASKS
        if target["count"] < minimum:
            if now < drill.deadline:
                return None
            drill.figures = {"target": target, "live": live}
            return _finish(
                drill,
                RollbackDrill.State.INCONCLUSIVE,
                f"only {target['count']} of {minimum} drill tasks finished by {drill.deadline:%Y-%m-%d %H:%M} UTC",
                now=now,
            )
        verdict, reason, criteria = figures.compare(
            target, live or {}, figures.thresholds(), min_sample=minimum, criteria=("failure_rate", "p95_ms")
        )
        drill.figures = {"target": target, "live": live, "criteria": criteria}
        return _finish(drill, verdict, reason, now=now)


def _chain(drill: RollbackDrill, event: str) -> None:
    audit_append(
        kind=f"drill.{event}",
        subject=f"drill:{drill.pk}",
        actor=drill.by,
        data={
            "family": drill.family,
            "target": drill.target.ai_model,
            "state": drill.state,
            "reason": drill.reason,
            "warm": {"ok": drill.warm_ok, "status": drill.warm_status, "latency_ms": drill.warm_latency_ms},
            "figures": drill.figures,
        },
    )


def _finish(drill: RollbackDrill, state: str, reason: str, *, now) -> RollbackDrill:
    drill.state = state
    drill.reason = reason
    drill.finished_at = now
    drill.save()
    if state in (RollbackDrill.State.FAIL, RollbackDrill.State.INCONCLUSIVE):
        drill.case = review_services.subject_case_open(
            kind=CASE_KIND,
            subject_ref=f"drill-target:{drill.target_id}",
            title=f"Rollback drill {drill.pk} of {drill.target.ai_model} ({drill.family}) ended {state}",
            reason=reason,
            quorum=1,
            sla_hours=24,
            rule_name="rollback-drill",
            severity=60 if state == RollbackDrill.State.FAIL else 30,
            actor=drill.by,
        )
        drill.save(update_fields=["case"])
    if state == RollbackDrill.State.FAIL:
        enqueue_on_commit("deployments.jobs.mail_drill_failed", drill.pk)
    _chain(drill, state)
    return drill


def drills_due(*, now=None) -> list[int]:
    """Scheduled drills (periodic): running drills evaluated; then each family's
    rollback target, and its live version when no rollout runs (the next rollout's
    target), drilled again once its last drill is older than ROLLOUT_DRILL_INTERVAL
    — a target with a health_url, or any target of a family with an active rollout
    (a version without one is drilled on demand only: its drill fails)."""
    now = now or timezone.now()
    ran = []
    for drill_id in RollbackDrill.objects.filter(state=RollbackDrill.State.RUNNING).values_list("pk", flat=True):
        try:
            drill_evaluate(drill_id=drill_id, now=now)
        except Exception:  # one broken drill must not stop the others; retried next tick
            logger.exception("evaluating drill %s failed", drill_id)
    interval = timedelta(seconds=settings.ROLLOUT_DRILL_INTERVAL)
    families = ModelVersion.objects.filter(status=VersionStatus.APPROVED).values_list("family", flat=True).distinct()
    for family in sorted(set(families)):
        active = routing.active_rollout(family)
        targets = [routing.rollback_target(family)]
        if active is None:
            targets.append(routing.live_version(family))
        for target in {t.pk: t for t in targets if t is not None}.values():
            if not target.health_url and active is None:
                continue
            last = RollbackDrill.objects.filter(target=target).order_by("-id").first()
            if last is not None and (last.state == RollbackDrill.State.RUNNING or now - last.started_at < interval):
                continue
            if routing.running_drill(family) is not None:
                continue
            try:
                ran.append(drill_run(family=family, target=target, by="scheduled drill", now=now).pk)
            except Exception:
                logger.exception("the scheduled drill of %s failed to run", target.ai_model)
    return ran
