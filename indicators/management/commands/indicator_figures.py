"""`manage.py indicator_figures [--seeds 100] [--days 60]`: the done-when figures of
issue 17 over many seeds, with the simulation's fast path (docs/indicators.md)."""

from __future__ import annotations

import os

from django.core.management.base import BaseCommand

from indicators import figures


class Command(BaseCommand):
    help = "Measure drift detection delay, false alarms, rubber-stamper detection and hysteresis over many seeds."

    def add_arguments(self, parser):
        parser.add_argument("--seeds", type=int, default=100)
        parser.add_argument("--days", type=int, default=60)

    def handle(self, *args, **options):
        seeds = options["seeds"]

        def progress(seed):
            if (seed + 1) % 10 == 0:
                self.stderr.write(f"  {seed + 1}/{seeds} seeds")

        result = figures.measure(seeds=seeds, days=options["days"], progress=progress)
        for line in result.lines():
            self.stdout.write(line)
        self.stdout.write(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
