from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from tasks.models import ApiKey
from tasks.services import ApiKeyError, api_key_create

DEFAULT_SCOPES = "tasks,reports,read"


class Command(BaseCommand):
    help = "Create an API key for the AI side. Prints the key once, on its own last line; only its hash is stored."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--owner", help="username answerable for the key (default: a user made for it)")
        parser.add_argument(
            "--scopes", default=DEFAULT_SCOPES, help=f"comma-separated, from {', '.join(ApiKey.Scope.values)}"
        )

    @transaction.atomic
    def handle(self, *args, name: str, owner: str | None, scopes: str, **options) -> None:
        User = get_user_model()
        if owner:
            try:
                owner_user = User.objects.get(username=owner)
            except User.DoesNotExist:
                raise CommandError(f"no user named {owner!r}") from None
        else:
            username = f"apikey-{name}"[:150]
            owner_user, created = User.objects.get_or_create(username=username)
            if created:
                owner_user.set_unusable_password()
                owner_user.save()
        scope_list = [s.strip() for s in scopes.split(",") if s.strip()]
        try:
            api_key, secret = api_key_create(name=name, owner=owner_user, scopes=scope_list)
        except ApiKeyError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Created API key {api_key.name!r} owned by {owner_user.username} with scopes "
            f"{','.join(api_key.scopes)}. It is shown once:"
        )
        self.stdout.write(secret)
