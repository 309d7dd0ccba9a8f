"""The indicator series FSAR keeps, which way of moving is bad for each, and the
detectors' parameters (docs/indicators.md, "Series" and "Detection").

Pure data: no database. The simulation's fast path, the periodic job and the
pages read the same definitions.
"""

from __future__ import annotations

from dataclasses import dataclass

UP, DOWN = "up", "down"
MODEL, COMMITTEE, REVIEWER = "model", "committee", "reviewer"


@dataclass(frozen=True)
class SeriesDef:
    key: str
    scope: str
    direction: str  # which way of moving is bad
    title: str
    unit: str = ""
    # Floors on the reference spread, so that a very quiet reference does not turn
    # a trivial move into many standard deviations: max(absolute, relative·|centre|).
    sd_floor_abs: float = 0.0
    sd_floor_rel: float = 0.05
    detect: bool = True  # a drift detector runs on it (reviewer series feed the watch instead)
    # A share of n trials: its spread is at least the binomial one, √(p(1 − p)/n̄),
    # whatever a quiet reference window happened to show.
    binomial: bool = False


SERIES: dict[str, SeriesDef] = {
    d.key: d
    for d in [
        # Per task type × model, from the API tasks' own rows (never backfilled ones).
        SeriesDef("model.mean_ms", MODEL, UP, "Mean duration", "ms", sd_floor_rel=0.03),
        SeriesDef("model.p95_ms", MODEL, UP, "p95 duration", "ms", sd_floor_rel=0.03),
        SeriesDef("model.failure_rate", MODEL, UP, "Failure rate", "ratio", sd_floor_abs=0.005, binomial=True),
        SeriesDef("model.cost_micros", MODEL, UP, "Cost per task", "micro-units", sd_floor_rel=0.03),
        SeriesDef("model.held_share", MODEL, UP, "Share held or denied", "ratio", sd_floor_abs=0.005, binomial=True),
        # Committee-wide.
        SeriesDef("committee.approval_rate", COMMITTEE, UP, "Approval rate", "ratio", sd_floor_abs=0.03, binomial=True),
        SeriesDef("committee.decide_s", COMMITTEE, DOWN, "Median seconds from opening to deciding", "s"),
        SeriesDef(
            "committee.fast_share",
            COMMITTEE,
            UP,
            "Share decided within a minute",
            "ratio",
            sd_floor_abs=0.03,
            binomial=True,
        ),
        SeriesDef("committee.rationale_len", COMMITTEE, DOWN, "Median rationale length", "chars"),
        SeriesDef(
            "committee.against_severity",
            COMMITTEE,
            UP,
            "Share approved with severity ≥ 50",
            "ratio",
            sd_floor_abs=0.03,
            binomial=True,
        ),
        SeriesDef("committee.expired", COMMITTEE, UP, "Cases past due undecided", "cases", sd_floor_abs=1.0),
        # Per reviewer (daily values; the watch reads them over a rolling window).
        SeriesDef("reviewer.approval_rate", REVIEWER, UP, "Approval rate", "ratio", detect=False),
        SeriesDef("reviewer.vote_s", REVIEWER, DOWN, "Median seconds from opening to voting", "s", detect=False),
        SeriesDef("reviewer.rationale_len", REVIEWER, DOWN, "Median rationale length", "chars", detect=False),
        SeriesDef("reviewer.duplicate_share", REVIEWER, UP, "Near-duplicate rationales", "ratio", detect=False),
        SeriesDef("reviewer.dissent_rate", REVIEWER, DOWN, "Dissent rate", "ratio", detect=False),
    ]
}


@dataclass(frozen=True)
class EwmaParams:
    """EWMA of the standardized daily series against a trailing reference window
    (docs/indicators.md, "Detection")."""

    lam: float = 0.4  # EWMA weight of the newest point
    fire_l: float = 3.5  # fires above fire_l · σ_EWMA …
    resolve_l: float = 1.0  # … resolves below resolve_l · σ_EWMA (hysteresis)
    for_points: int = 2  # consecutive points above the firing threshold before it fires
    keep_firing_for: int = 3  # consecutive points below the lower threshold before it resolves
    reference_days: int = 28  # the reference window …
    reference_lag: int = 3  # … ends this many days before the point judged
    min_reference: int = 14  # points needed in the window before judging at all
    clip_z: float = 8.0  # one wild point moves the statistic at most this much

    @property
    def sigma(self) -> float:
        return (self.lam / (2 - self.lam)) ** 0.5

    @property
    def fire_at(self) -> float:
        return self.fire_l * self.sigma

    @property
    def resolve_at(self) -> float:
        return self.resolve_l * self.sigma


@dataclass(frozen=True)
class WatchParams:
    """The reviewer-behaviour watch (trust inflation; docs/indicators.md)."""

    window_days: int = 7  # the rolling window a member's behaviour is read over
    reference_days: int = 28  # their own baseline …
    reference_lag: int = 7  # … ending this many days before (so the window is not in it)
    min_reference: int = 10  # baseline days with votes needed before judging
    min_votes: int = 5  # votes in the window needed before judging
    own_z: float = 2.5  # a signal moved against the member's own baseline by this many σ …
    signals_to_fire: int = 3  # … and against the committee, in this many signals at once
    signals_to_resolve: int = 1  # at most this many moved …
    for_points: int = 2
    keep_firing_for: int = 3


@dataclass(frozen=True)
class CommitteeInflationParams:
    approval_l: float = 2.0  # committee approval EWMA above approval_l · σ_EWMA …
    models_l: float = 2.0  # … while the mean bad-side model statistic is above models_l · σ_EWMA
    for_points: int = 2
    keep_firing_for: int = 3


EWMA = EwmaParams()
WATCH = WatchParams()
COMMITTEE_INFLATION = CommitteeInflationParams()

# The reviewer signals the watch reads, with how each is compared: (series key,
# transform, σ floor on the transformed scale, margin against the committee).
# Time and length compare on a log scale (a halving is a halving, at 20 s or 20 min).
WATCH_SIGNALS: dict[str, tuple[str, float, float]] = {
    "reviewer.approval_rate": ("identity", 0.06, 0.10),
    "reviewer.vote_s": ("log", 0.25, 0.69),  # half the others' time
    "reviewer.rationale_len": ("log", 0.15, 0.41),  # two thirds of the others' length
    "reviewer.duplicate_share": ("identity", 0.06, 0.25),
    "reviewer.dissent_rate": ("identity", 0.04, 0.05),
}


def label_key(labels: dict[str, str]) -> str:
    """A canonical text for a labels dict: sorted k=v pairs, comma-separated."""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))
