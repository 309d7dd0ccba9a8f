from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render

from audit.chain import current_head
from audit.keys import current_key, known_keys
from audit.models import AuditEntry
from core.roles import OPERATORS, role_required


@role_required(OPERATORS)
def chain(request: HttpRequest) -> HttpResponse:
    """The head hash to write down, and the newest entries."""
    entries = AuditEntry.objects.order_by("-seq")
    kind = request.GET.get("kind", "").strip()
    if "\x00" in kind:  # PostgreSQL refuses a NUL in a query: a 500 otherwise
        return HttpResponseBadRequest("kind: must not contain a NUL (\\x00) character", content_type="text/plain")
    if kind:
        entries = entries.filter(kind=kind)
    before = request.GET.get("before", "")
    if before.isascii() and before.isdigit():  # isdigit() alone accepts "²", which int() refuses
        entries = entries.filter(seq__lt=int(before))
    page = list(entries[:51])
    head = current_head()
    key = current_key()
    return render(
        request,
        "audit/chain.html",
        {
            "head": head,
            "key": key,
            # The head's own key may be an old one (not rotated yet) or the development key.
            "head_key": known_keys().get(head.key_id),
            "entries": page[:50],
            "next_before": page[49].seq if len(page) > 50 else None,
            "kind": kind,
            "anchor_file": bool(settings.AUDIT_ANCHOR_FILE),
        },
    )
