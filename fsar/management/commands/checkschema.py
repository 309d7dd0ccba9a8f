from django.core.management.base import BaseCommand, CommandError

from fsar.schema import check_schema


class Command(BaseCommand):
    help = "Compare the live database with the models; list every missing table, column or index."

    def add_arguments(self, parser):
        parser.add_argument("--database", default="default")

    def handle(self, *args, database: str, **options) -> None:
        problems = check_schema(database)
        for problem in problems:
            self.stdout.write(f"- {problem}")
        if problems:
            raise CommandError(
                f"{len(problems)} schema problem(s): the database is behind the models. "
                "Run `manage.py migrate` (or check for migrations recorded as applied that were not)."
            )
        self.stdout.write(self.style.SUCCESS("Schema OK: every table, column and index the models expect exists."))
