"""The tamper-evident audit chain: one global, append-only list of every
decision-bearing event. Each entry's hash is an HMAC, under a key kept outside
the database, of its canonical content and the previous entry's hash, so an
edit, insertion or deletion made out of band breaks the chain where it
happened, and whoever made it cannot recompute the rest (audit.chain)."""

from django.db import models


class AuditEntry(models.Model):
    seq = models.PositiveBigIntegerField(unique=True, help_text="1, 2, 3, … with no gaps.")
    created_at = models.DateTimeField()
    kind = models.CharField(max_length=60, help_text="e.g. vote.cast, case.decided, api_key.created")
    actor = models.CharField(max_length=150, blank=True, help_text="username, 'api-key:<name>' or 'system'")
    subject = models.CharField(max_length=200, help_text="what the event is about, e.g. case:12")
    data = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    key_id = models.CharField(
        max_length=16,
        blank=True,
        default="",
        help_text="Id of the key the hash is an HMAC under (never the key); empty: plain SHA-256, before keys.",
    )

    class Meta:
        ordering = ["seq"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["subject", "seq"], name="audit_subject_seq")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.kind} {self.subject}"


class AuditHead(models.Model):
    """A single row naming the newest entry. Appenders lock it, so entries are
    chained one at a time even across processes."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64)
    key_id = models.CharField(max_length=16, blank=True, default="")

    def __str__(self) -> str:
        return f"head #{self.seq} {self.hash[:12]}…"
