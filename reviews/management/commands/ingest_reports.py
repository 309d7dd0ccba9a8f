"""`manage.py ingest_reports PATH…`: ingest FSAR reports from files and folders."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from django.core.management.base import BaseCommand
from tqdm import tqdm

from reviews.services import ingest_file

SUFFIXES = (".md", ".json")


def collect(paths: list[str]) -> tuple[list[Path], list[str]]:
    """The files to ingest, and the paths that are neither a file nor a folder."""
    found: list[Path] = []
    missing: list[str] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        elif path.is_file():
            found.append(path)
        else:
            missing.append(name)
    return found, missing


class Command(BaseCommand):
    help = (
        "Ingest FSAR reports (*.md, *.json) from files and folders. Safe to rerun: a report already "
        "stored is counted as unchanged. A bad file is reported and never stops the others."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("paths", nargs="+")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar (e.g. in logs).")

    def handle(self, *args, paths: list[str], no_progress: bool = False, **options) -> None:
        files, missing = collect(paths)
        counts: Counter[str] = Counter(invalid=len(missing))
        problems: list[str] = [f"{name}: invalid: no such file or folder" for name in missing]
        bar = tqdm(files, unit="report", disable=no_progress or not files, file=self.stderr._out)
        for path in bar:
            try:
                raw = path.read_bytes()
            except OSError as exc:
                counts["invalid"] += 1
                problems.append(f"{path}: invalid: cannot read ({exc.strerror})")
                continue
            outcome = ingest_file(name=path.name, raw=raw)
            counts[outcome.outcome] += 1
            if outcome.outcome not in ("ingested", "unchanged"):
                problems.append(f"{path}: {outcome.outcome}: {outcome.detail}")
        for line in problems:
            self.stdout.write(line)
        summary = ", ".join(
            f"{counts[k]} {k}" for k in ("ingested", "unchanged", "conflicting", "invalid", "unavailable") if counts[k]
        )
        self.stdout.write(f"{len(files) + len(missing)} file(s): {summary or 'nothing to do'}")
