from django.core.management.base import BaseCommand, CommandError

from audit.chain import verify_chain


class Command(BaseCommand):
    help = (
        "Walk the audit chain and report the first entry edited, inserted or deleted out of band, and each "
        "segment and key verified. Prints the head hash: write it down outside the database and pass it back "
        "with --expect-head to catch deletion of the newest entries too (the daily job mails it to operators "
        "and appends it to AUDIT_ANCHOR_FILE, which this checks too)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--expect-head", dest="expect_head", help="a head hash recorded earlier")

    def handle(self, *args, expect_head: str | None, **options) -> None:
        report = verify_chain(expect_head=expect_head)
        if report.development_key:
            self.stderr.write(
                self.style.WARNING(
                    "WARNING: entries are keyed with the published DEVELOPMENT key (AUDIT_CHAIN_KEY is not set): "
                    "anyone with the database can recompute them. Never run production like this."
                )
            )
        if not report.ok:
            for segment in report.segments:
                self.stderr.write(f"{segment}: verified up to there")
            raise CommandError(f"Audit chain BROKEN after {report.entries} good entries: {report.problem}")
        self.stdout.write(self.style.SUCCESS(f"Audit chain OK: {report.entries} entries."))
        for segment in report.segments:
            self.stdout.write(f"{segment}: verified")
        if report.anchors:
            self.stdout.write(f"{report.anchors} heads anchored in AUDIT_ANCHOR_FILE are on the chain.")
        self.stdout.write(f"head {report.head}")
