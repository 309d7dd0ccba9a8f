"""simulate_oversight: the database path (tables, index-range reads, stored
points, detectors on Series state, alerts) gives the same series and alerts as
the fast path the figures use."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command

from indicators import simulation, simulation_db
from indicators.models import Alert, AlertState, Period, Point
from tasks.models import ExecutionTask

pytestmark = pytest.mark.django_db
NO_VIEWS = {"reviewer.vote_s", "committee.decide_s", "committee.fast_share"}


def _has_views() -> bool:
    try:
        apps.get_model("reviews", "CaseView")
    except LookupError:
        return False
    return True


def test_the_database_path_and_the_fast_path_agree():
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=36)
    h = simulation.generate(
        days=36,
        seed=11,
        start=start,
        tasks_per_day=40,
        drift=simulation.Drift("model-b", 1.6, 20),
        rubber=simulation.RubberStamper("carol", 20),
    )
    member_pk = simulation_db.write(h)
    db_transitions = simulation_db.compute(h)
    fast_points, fast_transitions = simulation.fast_run(h)

    def member_label(label_key: str) -> str:
        if label_key.startswith("member="):
            return f"member={member_pk[int(label_key.split('=')[1])]}"
        return label_key

    skip = set() if _has_views() else NO_VIEWS
    expected = {
        (key, member_label(lk), day): (value, n)
        for day, points in fast_points.items()
        for (key, lk), (value, n, _) in points.items()
        if key not in skip
    }
    stored = {
        (p.series.key, p.series.label_key, p.start): (p.value, p.n)
        for p in Point.objects.filter(period=Period.DAY).select_related("series")
    }
    assert stored.keys() == expected.keys()
    for k, (value, n) in expected.items():
        assert stored[k][1] == n, k
        assert stored[k][0] == pytest.approx(value, rel=1e-9, abs=1e-9), k

    def summary(transitions, *, label=lambda label_key: label_key):
        return sorted((t.what, t.kind, t.subject[0], label(t.subject[1]), t.day) for t in transitions)

    if skip:  # before reviews records first views: the fast path without those series
        fast_transitions = simulation.run_detectors(
            {day: {k: v for k, v in points.items() if k[0] not in skip} for day, points in fast_points.items()}
        )
    # The database's labels name members by pk already; the fast path's by their index.
    assert summary(db_transitions) == summary(fast_transitions, label=member_label)
    fired = {a.dedup_key for a in Alert.objects.all()}
    assert any(k.startswith("drift:model.p95_ms:ai_model=model-b") for k in fired)
    carol = member_pk[simulation.MEMBERS.index("carol") + 1]
    assert f"trust_inflation:member={carol}" in fired
    assert all(a.state in (AlertState.FIRING, AlertState.RESOLVED) for a in Alert.objects.all())
    # Backfilled rows are in the tables, and in no point.
    assert ExecutionTask.objects.filter(source="backfill").count() == len(h.backfilled) > 0


def test_running_the_detectors_again_changes_nothing():
    h = simulation.generate(days=30, seed=2, tasks_per_day=20, drift=simulation.Drift("model-a", 1.6, 18))
    simulation_db.write(h)
    first = simulation_db.compute(h)
    alerts = list(Alert.objects.values_list("pk", "state"))
    assert first and simulation_db.compute(h) == []
    assert list(Alert.objects.values_list("pk", "state")) == alerts


def test_the_command_runs_and_refuses_a_database_that_is_not_fresh():
    out = StringIO()
    call_command(
        "simulate_oversight",
        "--days=25",
        "--seed=4",
        "--tasks-per-day=10",
        "--hourly-days=1",
        "--rubber-stamper=zoe",
        "--from-day=12",
        "--drift=model-c:+50%p95",
        "--from-day=10",
        stdout=out,
    )
    assert "tasks" in out.getvalue()
    assert Point.objects.filter(period=Period.HOUR).exists()
    assert Point.objects.filter(series__member__username="zoe").exists()
    with pytest.raises(CommandError, match="fresh database"):
        call_command("simulate_oversight", "--days=3", stdout=StringIO())


def test_the_command_names_a_bad_drift():
    with pytest.raises(CommandError, match="MODEL:\\+30%p95"):
        call_command("simulate_oversight", "--days=3", "--drift=model-a:30", stdout=StringIO())
    with pytest.raises(CommandError, match="no simulated model"):
        call_command("simulate_oversight", "--days=3", "--drift=gpt:+30%p95", stdout=StringIO())
    assert not ExecutionTask.objects.exists()
