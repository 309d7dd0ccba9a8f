"""`manage.py simulate_oversight --days 60 --seed N [--rubber-stamper USER --from-day D]
[--drift MODEL:+30%p95 --from-day D]`: a realistic oversight history in a fresh
database, then the indicator series and detectors over it (docs/indicators.md)."""

from __future__ import annotations

import argparse

from django.core.management.base import BaseCommand, CommandError

from indicators import simulation, simulation_db
from indicators.models import Alert


class _Remember(argparse.Action):
    """--rubber-stamper and --drift: the --from-day that follows applies to it."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace._last = self.dest


class _FromDay(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        last = getattr(namespace, "_last", None)
        if last is None:
            parser.error("--from-day follows --rubber-stamper or --drift")
        setattr(namespace, f"{last}_from", values)


class Command(BaseCommand):
    help = "Generate a realistic oversight history in a fresh database and run the indicators over it."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=60)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--rubber-stamper", dest="rubber", action=_Remember, metavar="USER")
        parser.add_argument("--drift", dest="drift", action=_Remember, metavar="MODEL:+30%p95")
        parser.add_argument("--from-day", type=int, action=_FromDay, metavar="D")
        parser.add_argument("--tasks-per-day", type=int, default=200, help="API tasks per task type × model per day.")
        parser.add_argument("--cases-per-day", type=int, default=8)
        parser.add_argument("--hourly-days", type=int, default=7, help="Compute hourly points for the last N days.")

    def handle(self, *args, **options):
        days = options["days"]
        if days < 1:
            raise CommandError("--days must be at least 1")
        members = simulation.MEMBERS
        rubber = drift = None
        if options.get("rubber"):
            name = options["rubber"]
            if name not in members:
                members = (*members[:-1], name)
            rubber = simulation.RubberStamper(name, options.get("rubber_from", 20))
        if options.get("drift"):
            try:
                drift = simulation.Drift.parse(options["drift"], options.get("drift_from", 20))
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            if drift.ai_model not in simulation.MODELS:
                raise CommandError(
                    f"--drift: no simulated model {drift.ai_model!r} (one of {', '.join(simulation.MODELS)})"
                )
        h = simulation.generate(
            days=days,
            seed=options["seed"],
            tasks_per_day=options["tasks_per_day"],
            cases_per_day=options["cases_per_day"],
            drift=drift,
            rubber=rubber,
            members=members,
        )
        try:
            simulation_db.write(h, members=members)
        except simulation_db.NotFresh as exc:
            raise CommandError(str(exc)) from None
        transitions = simulation_db.compute(h, hourly_days=min(options["hourly_days"], days))
        self.stdout.write(
            f"{len(h.tasks)} tasks, {len(h.cases)} cases, {len(h.votes)} votes over {days} days "
            f"from {h.start:%Y-%m-%d}; {len(transitions)} detector transitions"
        )
        for alert in Alert.objects.order_by("fired_at", "pk"):
            day = (alert.details or {}).get("day", "")
            self.stdout.write(f"  {alert.state:<12} {alert.kind:<20} {day} {alert.title}")
