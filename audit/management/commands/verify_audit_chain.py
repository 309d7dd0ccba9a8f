from django.core.management.base import BaseCommand, CommandError

from audit.chain import verify_chain


class Command(BaseCommand):
    help = (
        "Walk the audit chain and report the first entry edited, inserted or deleted out of band. "
        "Prints the head hash: write it down outside the database and pass it back with --expect-head "
        "to catch deletion of the newest entries too."
    )

    def add_arguments(self, parser):
        parser.add_argument("--expect-head", dest="expect_head", help="a head hash recorded earlier")

    def handle(self, *args, expect_head: str | None, **options) -> None:
        report = verify_chain(expect_head=expect_head)
        if not report.ok:
            raise CommandError(f"Audit chain BROKEN after {report.entries} good entries: {report.problem}")
        self.stdout.write(self.style.SUCCESS(f"Audit chain OK: {report.entries} entries."))
        self.stdout.write(f"head {report.head}")
