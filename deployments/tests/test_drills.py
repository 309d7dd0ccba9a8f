"""Rollback drills: warm (the health_url answers 2xx in time, under the outbound
rules), works (a drill share of traffic), stored, on the chain; a failed one
mails the operators and opens a committee case."""

import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from audit.models import AuditEntry
from deployments import drills, rollouts, routing
from deployments.errors import RolloutError
from deployments.models import ModelVersion, RollbackDrill
from deployments.tests.conftest import REASON, finished_tasks, passed_drill
from reviews.models import Case

pytestmark = pytest.mark.django_db


class Health(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        if self.path == "/slow":
            time.sleep(2)
        if self.path == "/away":
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()
            return
        if self.path == "/hop":
            self.send_response(302)
            self.send_header("Location", "/ok")
            self.end_headers()
            return
        status = 500 if self.path == "/broken" else 200
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"x" * 200_000 if self.path == "/big" else b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def health(settings):
    """A local health endpoint (127.0.0.1, a free port), allowed for drills here only."""
    settings.ROLLOUT_DRILL_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.ROLLOUT_DRILL_TIMEOUT_SECONDS = 0.5
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def versions(approved_version, health):
    def make(path: str):
        approved_version("coder-stable", health_url=f"{health}{path}")
        approved_version("coder-next", health_url=f"{health}/ok")
        return ModelVersion.objects.get(ai_model="coder-stable"), ModelVersion.objects.get(ai_model="coder-next")

    return make


def test_a_drill_whose_health_url_answers_500_fails_mails_the_operators_and_opens_a_case(
    versions, operator, mailoutbox, django_capture_on_commit_callbacks
):
    operator.email = "olivia@ops.example"
    operator.save()
    stable, candidate = versions("/broken")
    with django_capture_on_commit_callbacks(execute=True):
        drill = drills.drill_run(family="coder", target=stable)
    assert (drill.state, drill.warm_ok, drill.warm_status) == ("fail", False, 500)
    assert "answered HTTP 500" in drill.reason and drill.warm_latency_ms is not None
    case = Case.objects.get(pk=drill.case_id)
    assert (case.kind, case.subject_ref) == ("rollout", f"drill-target:{stable.pk}")
    again = drills.drill_run(family="coder", target=stable)
    assert again.state == "fail" and again.case_id == case.pk  # one waiting case per target, not one a day
    assert AuditEntry.objects.filter(kind="drill.fail", subject=f"drill:{drill.pk}").count() == 1
    mails = [m for m in mailoutbox if "Rollback drill failed" in m.subject]
    assert [m.to for m in mails] == [[operator.email]] and "answered HTTP 500" in mails[0].body
    with pytest.raises(RolloutError, match=r"ended fail: warm check failed: answered HTTP 500"):
        rollouts.rollout_create(candidate_id=candidate.pk, reason=REASON, by=operator)


def test_a_drill_whose_health_url_times_out_fails(versions):
    stable, _ = versions("/slow")
    drill = drills.drill_run(family="coder", target=stable)
    assert drill.state == "fail" and "no answer within 0.5 s" in drill.reason
    assert drill.warm_latency_ms < 1900


def test_a_redirect_to_another_host_fails_and_one_on_the_same_host_is_followed(versions):
    stable, candidate = versions("/away")
    drill = drills.drill_run(family="coder", target=stable)
    assert drill.state == "fail" and "redirected to another host (169.254.169.254)" in drill.reason
    assert drills.warm_check(stable.health_url.replace("/away", "/hop"))["ok"] is True
    big = drills.warm_check(stable.health_url.replace("/away", "/big"))
    assert big["ok"] is True and big["status"] == 200  # the body is read up to the cap only


def test_the_loopback_is_refused_unless_its_network_is_allowed(versions, settings):
    stable, _ = versions("/ok")
    settings.ROLLOUT_DRILL_ALLOWED_NETWORKS = []
    result = drills.warm_check(stable.health_url)
    assert result["ok"] is False and "127.0.0.1 is a loopback address" in result["error"]


def test_a_live_target_that_answers_passes_and_lets_the_rollout_start(versions, operator):
    stable, candidate = versions("/ok")
    finished_tasks("coder-stable", 5)  # the family runs on it: it is live
    drill = drills.drill_run(family="coder", target=stable)
    assert (drill.state, drill.warm_status) == ("pass", 200)
    assert AuditEntry.objects.filter(kind="drill.pass").count() == 1
    assert rollouts.rollout_create(candidate_id=candidate.pk, reason=REASON, by=operator).state == "progressing"


def test_the_works_drill_routes_its_share_to_the_previous_stable_and_compares_it(versions, operator, settings):
    settings.ROLLOUT_DRILL_MIN_TASKS = 20
    stable, candidate = versions("/ok")
    passed_drill(stable)
    r = rollouts.rollout_create(candidate_id=candidate.pk, reason=REASON, by=operator)
    for _ in range(4):
        rollouts.rollout_promote(rollout_id=r.pk, by=operator, reason="Promote to the next step.")
    assert routing.rollback_target("coder") == stable
    drill = drills.drill_run(family="coder")
    assert (drill.state, drill.target, drill.live) == ("running", stable, candidate)
    routed = [routing.route("coder", f"k{i}").ai_model for i in range(3000)]
    assert 0.003 < routed.count("coder-stable") / 3000 < 0.02  # about 1%
    assert drills.drill_evaluate(drill_id=drill.pk) is None  # too few tasks yet
    later = timezone.now() + timedelta(minutes=5)
    finished_tasks("coder-stable", 25, failed=1, at=later - timedelta(minutes=1))
    finished_tasks("coder-next", 200, failed=8, at=later - timedelta(minutes=1))
    done = drills.drill_evaluate(drill_id=drill.pk, now=later)
    assert done.state == "pass" and done.figures["target"]["count"] == 25
    assert {routing.route("coder", f"k{i}").ai_model for i in range(300)} == {"coder-next"}


def test_a_works_drill_with_too_few_tasks_by_its_deadline_is_inconclusive(versions, operator):
    stable, candidate = versions("/ok")
    passed_drill(stable)
    r = rollouts.rollout_create(candidate_id=candidate.pk, reason=REASON, by=operator)
    for _ in range(4):
        rollouts.rollout_promote(rollout_id=r.pk, by=operator, reason="Promote to the next step.")
    drill = drills.drill_run(family="coder")
    done = drills.drill_evaluate(drill_id=drill.pk, now=timezone.now() + timedelta(hours=7))
    assert done.state == "inconclusive" and "only 0 of 20 drill tasks finished" in done.reason
    assert done.case_id is not None


def test_scheduled_drills_run_once_per_interval(versions, approved_version):
    stable, candidate = versions("/ok")
    approved_version("writer-1", family="writer")  # no health_url: drilled on demand only
    ran = drills.drills_due()
    assert len(ran) == 1  # the live version (the next rollout's rollback target)
    assert drills.drills_due() == []
    assert RollbackDrill.objects.get().target == candidate  # the newest approved version is live
