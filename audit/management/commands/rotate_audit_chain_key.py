from django.core.management.base import BaseCommand, CommandError

from audit.chain import RotationRefused, audit_key_rotate


class Command(BaseCommand):
    help = (
        "Start a new segment of the audit chain under the current AUDIT_CHAIN_KEY. First set the new key as "
        "AUDIT_CHAIN_KEY and add the old one to AUDIT_CHAIN_OLD_KEYS (so its segment still verifies). The chain is "
        "verified before it is sealed; the rotation is an entry on the chain (audit.key_rotated)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--reason", required=True, help="why the key is rotated (recorded on the chain)")
        parser.add_argument("--by", default="", help="who rotates it (recorded as the actor)")

    def handle(self, *args, reason: str, by: str, **options) -> None:
        try:
            entry = audit_key_rotate(reason=reason, actor=by.strip() or "system")
        except RotationRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(f"New segment from entry #{entry.seq} under key {entry.key_id} ({entry.kind}).")
        )
        self.stdout.write(f"head {entry.hash}")
