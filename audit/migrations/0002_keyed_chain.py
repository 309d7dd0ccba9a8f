"""Key the audit chain: entries get the id of the key their hash is an HMAC
under, and a chain that already has entries is sealed under the key by one
recorded `audit.key_introduced` entry.

The entries from before keys are not rewritten: their plain SHA-256 hashes stay
as they were (so heads written down earlier still verify), and the
key-introduction entry links to the last of them under the key. From then on
an edit anywhere before it breaks that link, and nobody without the key can
re-link it. Its data says whether the old entries verified when they were
sealed. Irreversible: removing the key ids would leave the keyed entries
unverifiable.
"""

import hashlib
import json
from datetime import UTC

from django.db import migrations, models
from django.utils import timezone

GENESIS = "0" * 64


def _canonical(e) -> bytes:
    # audit.chain.canonical, frozen here so this migration does not change with the code.
    body = {
        "seq": e.seq,
        "created_at": e.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "kind": e.kind,
        "actor": e.actor,
        "subject": e.subject,
        "data": e.data,
        "prev_hash": e.prev_hash,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _legacy_problem(AuditEntry, head) -> str:
    """The first break in the entries from before keys ("" when they verify)."""
    prev, expected = GENESIS, 1
    for e in AuditEntry.objects.order_by("seq").iterator(chunk_size=2000):
        if e.seq != expected:
            return f"entry #{expected} is missing"
        if e.prev_hash != prev:
            return f"entry #{e.seq} does not follow #{e.seq - 1}"
        if hashlib.sha256(_canonical(e)).hexdigest() != e.hash:
            return f"entry #{e.seq} does not match its hash"
        prev, expected = e.hash, expected + 1
    if (head.seq, head.hash) != (expected - 1, prev):
        return f"the chain ends at #{expected - 1} but its head says #{head.seq}"
    return ""


def introduce_key(apps, schema_editor):
    from audit.keys import current_key

    AuditEntry = apps.get_model("audit", "AuditEntry")
    AuditHead = apps.get_model("audit", "AuditHead")
    head = AuditHead.objects.select_for_update().filter(id=1).first()
    if head is None or head.seq == 0 or head.key_id:
        return  # an empty chain starts keyed with its first entry
    key = current_key()
    problem = _legacy_problem(AuditEntry, head)
    entry = AuditEntry(
        seq=head.seq + 1,
        created_at=timezone.now(),
        kind="audit.key_introduced",
        actor="system",
        subject="audit_chain",
        data={
            "algorithm": "HMAC-SHA256",
            "key_id": key.key_id,
            "previous_key_id": None,
            "sealed_seq": head.seq,
            "sealed_hash": head.hash,
            "reason": "migration audit.0002: the chain is keyed from here on; the entries before keep "
            "their SHA-256 hashes and are sealed by this entry",
            "sealed_verified": not problem,
            "sealed_problem": problem or None,
        },
        prev_hash=head.hash,
        key_id=key.key_id,
    )
    mac = key.mac()
    mac.update(_canonical(entry))
    entry.hash = mac.hexdigest()
    entry.save()
    head.seq, head.hash, head.key_id = entry.seq, entry.hash, key.key_id
    head.save(update_fields=["seq", "hash", "key_id"])


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_audit_chain")]

    operations = [
        migrations.AddField(
            model_name="auditentry",
            name="key_id",
            field=models.CharField(
                blank=True,
                default="",
                help_text="Id of the key the hash is an HMAC under (never the key); empty: plain SHA-256, before keys.",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="audithead",
            name="key_id",
            field=models.CharField(blank=True, default="", max_length=16),
        ),
        migrations.RunPython(introduce_key),
    ]
