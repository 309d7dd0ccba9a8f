"""Recompute the task metrics rollups from execution_tasks (all of it by default)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Max, Min
from django.utils import timezone

from tasks import rollups
from tasks.models import ExecutionTask, TaskMetricsRollup


def aware(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("needs a timezone, e.g. 2026-11-01T00:00:00Z")
    return moment


class Command(BaseCommand):
    help = (
        "Recompute the metrics rollups of every UTC day overlapping [--since, --until) from the raw tasks, "
        "a day per transaction (default: every day with a finished task). Safe to rerun and to run while "
        "tasks finish."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", type=aware, help="ISO 8601 with a timezone (default: the first finished task)")
        parser.add_argument("--until", type=aware, help="ISO 8601 with a timezone (default: now)")

    def handle(self, *args, since: datetime | None, until: datetime | None, **options) -> None:
        until = until or timezone.now()
        if since is None:
            span = ExecutionTask.objects.filter(status__in=rollups.FINISHED).aggregate(
                first=Min("finished_at"), last=Max("finished_at")
            )
            since = span["first"] or until
            if span["last"] is not None and span["last"] >= until:
                until = span["last"] + timedelta(microseconds=1)
            # Rollup rows older than every task (left by deleted tasks) are recomputed too.
            oldest = TaskMetricsRollup.objects.aggregate(first=Min("start"))["first"]
            if oldest is not None and oldest < since:
                since = oldest
        if since >= until:
            raise CommandError("--since must be before --until")
        days = rollups.days_between(since, until)
        self.stdout.write(f"Rebuilding {len(days)} day(s): {days[0]:%Y-%m-%d} to {days[-1]:%Y-%m-%d} (UTC)")
        started = time.perf_counter()

        def progress(day: datetime, counted: int) -> None:
            done = days.index(day) + 1
            if done == len(days) or done % 10 == 0:
                self.stdout.write(
                    f"  {done}/{len(days)} days, {counted:,} tasks, {time.perf_counter() - started:.1f} s"
                )

        counted = rollups.rebuild(since, until, progress=progress)
        self.stdout.write(
            self.style.SUCCESS(
                f"Rebuilt the rollups of {counted:,} finished tasks in {time.perf_counter() - started:.1f} s"
            )
        )
