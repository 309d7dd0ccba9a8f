"""The detectors on hand-made series and on the simulation's fast path (pinned seeds)."""

from indicators import detectors, figures, simulation
from indicators.catalog import EWMA
from indicators.observations import VoteObs
from indicators.tests.support import START, feed, quiet


def test_a_quiet_series_never_fires():
    assert feed(quiet(90)) == []


def test_a_step_fires_only_after_for_points():
    values = quiet(40) + [1_500.0] * 10
    transitions = feed(values)
    assert transitions[0] == ("fire", 40 + EWMA.for_points - 1)


def test_one_wild_day_does_not_fire():
    values = quiet(40) + [50_000.0] + quiet(20)
    assert [t for t in feed(values) if t[0] == "fire"] == []


def test_it_keeps_firing_until_below_the_lower_threshold_for_keep_firing_for_points():
    values = quiet(40) + [1_500.0] * 5 + quiet(20)
    transitions = feed(values)
    fired = transitions[0][1]
    assert transitions[0][0] == "fire"
    clear = next(i for what, i in transitions if what == "clear")
    resolved = next(i for what, i in transitions if what == "resolve")
    assert resolved - clear == EWMA.keep_firing_for - 1
    assert resolved > fired + 1


def test_between_the_two_thresholds_it_stays_firing():
    """Hysteresis: once fired, a level under the firing threshold but above the
    lower one keeps it firing (no resolve)."""
    sd_step = 20.0 * 1.0  # the quiet series' spread is about 0.6 × wobble; the floor (3 %) is 30
    values = quiet(40) + [1_500.0] * 4 + [1_000.0 + 30 * 1.6] * 30  # z ≈ 1.6: between 0.5 and 1.75
    transitions = feed(values)
    assert [w for w, _ in transitions] == ["fire"], (transitions, sd_step)


def test_an_oscillating_series_flaps_at_most_once_per_keep_firing_for():
    for period in (1, 2, 3, 5, 8):
        result = figures.oscillation_cycles(period=period)
        assert result["most_per_keep_firing_for"] <= 1, (period, result)
        assert result["cycles"] <= result["days"] // (EWMA.for_points + EWMA.keep_firing_for), (period, result)


def test_the_frozen_reference_keeps_a_lasting_change_firing():
    values = quiet(40) + [1_500.0] * 60
    assert [w for w, _ in feed(values)] == ["fire"]


def test_a_falling_series_fires_only_where_a_fall_is_bad():
    key_down = ("committee.rationale_len", "")
    key_up = ("model.p95_ms", "ai_model=m,task_type=t")
    values = quiet(40, centre=200.0, wobble=4) + [100.0] * 10
    assert feed(values, key=key_down)[0][0] == "fire"
    assert feed(values, key=key_up) == []


def test_hysteresis_state_machine():
    state: dict = {}
    step = lambda above, below: detectors.hysteresis(  # noqa: E731
        state, day=START, above=above, below=below, for_points=2, keep=3
    )
    assert step(True, False) is None
    assert step(False, False) is None  # the pending count starts over
    assert step(True, False) is None
    assert step(True, False) == "fire"
    assert step(False, True) == "clear"
    assert step(False, False) == "refire"  # back above the lower threshold
    assert [step(False, True) for _ in range(3)] == ["clear", None, "resolve"]


# --- the simulation's fast path, pinned on a few seeds (the 100-seed run: manage.py indicator_figures)


def test_a_30_percent_p95_drift_fires_within_3_days():
    for seed in (0, 1, 2):
        delay = figures.drift_delay(seed, days=40)
        assert delay is not None and delay <= 2, (seed, delay)


def test_a_rubber_stamper_is_flagged_within_7_days_and_nobody_else_is():
    for seed in (0, 1):
        delay, honest = figures.stamper_run(seed, days=40)
        assert delay is not None and delay <= 6, (seed, delay)
        assert honest == 0


def test_noise_only_histories_raise_no_reviewer_alert():
    for seed in (3, 4):
        _, _, honest = figures.noise_run(seed, days=45)
        assert honest == 0


def test_a_member_who_only_approves_more_is_not_flagged():
    """One signal alone (approvals up, same speed and fresh rationales) never flags."""
    h = simulation.generate(days=45, seed=7, start=START, tasks_per_day=5)
    stamper = 3
    votes = []
    for v in h.votes:
        if v.member_id == stamper and (v.at - START).days >= 20:
            v = VoteObs(v.vote_id, v.case_id, v.member_id, v.at, True, v.rationale, v.viewed_at, v.final_approved)
        votes.append(v)
    h.votes = votes
    _, transitions = simulation.fast_run(h)
    assert [t for t in transitions if t.kind == "trust_inflation"] == []
