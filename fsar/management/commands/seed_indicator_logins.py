"""`manage.py seed_indicator_logins`: after `simulate_oversight` (what `make
run-indicators` runs), give its simulated people the demo password, make the
operator staff and one member the committee chair, and print the logins the way
`seed_demo` does. Only for a demo database: it refuses one without the
simulated operator (docs/indicators.md, "Try it")."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from core.roles import COMMITTEE
from fsar.management.commands.seed_demo import DEMO_PASSWORD
from reviews.selectors import committee_chairs
from reviews.services import review_settings_set

SIM_OPERATOR = "sim-operator"  # indicators.simulation_db.users creates it


class Command(BaseCommand):
    help = (
        "Give simulate_oversight's users the demo password (operator sim-operator, the committee members), "
        "make one member the committee chair, and print the logins."
    )

    def add_arguments(self, parser):
        parser.add_argument("--chair", default="alice", help="The member made committee chair (default alice).")

    def handle(self, *args, chair: str, **options) -> None:
        User = get_user_model()
        operator = User.objects.filter(username=SIM_OPERATOR).first()
        if operator is None:
            raise CommandError(
                f"no user {SIM_OPERATOR!r}: run `manage.py simulate_oversight` on a fresh database first "
                "(or `make run-indicators`)"
            )
        members = list(User.objects.filter(groups__name=COMMITTEE).order_by("username"))
        chair_user = next((m for m in members if m.username == chair), None)
        if chair_user is None:
            names = ", ".join(m.username for m in members) or "none"
            raise CommandError(f"--chair: {chair!r} is not a simulated committee member (members: {names})")
        with transaction.atomic():
            for user in [operator, *members]:
                user.is_staff = user.pk == operator.pk
                user.set_password(DEMO_PASSWORD)
                user.save()
            if [u.pk for u in committee_chairs()] != [chair_user.pk]:
                review_settings_set(by=operator, reason="indicators demo: the chair is told first", chair=chair_user)
        others = [m.username for m in members if m.pk != chair_user.pk]
        self.stdout.write("")
        self.stdout.write(f"Indicator demo logins (password for all: {DEMO_PASSWORD}):")
        self.stdout.write(f"  {operator.username:<12} operator: every series and alert; acknowledges and resolves")
        self.stdout.write(f"  {chair_user.username:<12} committee chair: also the per-reviewer series and alerts")
        self.stdout.write(f"  {others[0] if others else '-':<12} committee member: the committee-wide series only")
        if len(others) > 1:
            self.stdout.write(f"  (other members: {', '.join(others[1:])}; same password)")
