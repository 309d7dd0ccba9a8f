"""What the apps' admins share: read-only pages for rows that only services change,
saves that go through a service, and the loop of a bulk action over services.

Every admin edit goes through a service (docs/architecture.md, "Writes and reads"):
the service records the acting user and the reason in the row's history and, for
governance, an audit-chain entry. These pieces keep each admin to what is its own.
"""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.http import HttpRequest, HttpResponseRedirect
from simple_history.admin import SimpleHistoryAdmin


class ReadOnlyMixin:
    """Every field read-only, nothing added or deleted here: the rows change through
    services (actions may still call them). For admins and inlines alike."""

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    pass


class ReadOnlyHistoryAdmin(ReadOnlyMixin, SimpleHistoryAdmin):
    pass


def error_text(exc: Exception) -> str:
    return getattr(exc, "message", None) or str(exc)


def each_selected(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset,
    act: Callable[[int], object],
    *,
    errors: tuple[type[Exception], ...],
    done: str,
    refused: str,
) -> list:
    """A bulk action: `act(pk)` (a service call) for each selected row, each on its
    own, so one refusal does not undo the others. Says how many were done
    (`done`, formatted with {n}) and why the others were refused (the first ten).
    Returns what the calls returned."""
    results, refusals = [], []
    for pk in queryset.values_list("pk", flat=True):
        try:
            results.append(act(pk))
        except errors as exc:
            refusals.append(f"#{pk}: {error_text(exc)}")
    if results:
        modeladmin.message_user(request, done.format(n=len(results)), messages.SUCCESS)
    if refusals:
        modeladmin.message_user(request, f"{refused}: " + "; ".join(refusals[:10]), messages.WARNING)
    return results


class ReasonActionForm(ActionForm):
    """The changelist's action bar with a reason, for actions whose service records one."""

    change_reason = forms.CharField(required=False, label="Why")


class ReasonForm(forms.ModelForm):
    """A model form with the reason every change through the admin records."""

    change_reason = forms.CharField(
        label="Why this change",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Kept in the row's history (and on the audit chain where the change is governance).",
    )


class ServiceSaveMixin:
    """The admin's save calls a service instead of `obj.save()`.

    Subclasses implement `save_through_service(request, obj, form, change)`, which
    calls the service and returns the message to show (or raises one of
    `service_errors`: nothing is saved and the refusal is shown). Related objects are
    the service's business too (`save_related` does nothing), and the admin's own
    log records only what a service did (its history and the chain are the record)."""

    service_errors: tuple[type[Exception], ...] = ()

    def save_through_service(self, request, obj, form, change) -> str:
        raise NotImplementedError

    def save_model(self, request, obj, form, change):
        try:
            obj._service_message = self.save_through_service(request, obj, form, change)
            obj._service_error = ""
        except self.service_errors as exc:
            obj._service_message = ""
            obj._service_error = error_text(exc)

    def save_related(self, request, form, formsets, change):
        return None

    def _service_response(self, request, obj, fallback):
        if obj._service_error:
            self.message_user(request, f"Nothing saved: {obj._service_error}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        if obj._service_message:
            self.message_user(request, obj._service_message, messages.SUCCESS)
        return fallback()

    def response_add(self, request, obj, post_url_continue=None):
        return self._service_response(
            request, obj, lambda: super(ServiceSaveMixin, self).response_add(request, obj, post_url_continue)
        )

    def response_change(self, request, obj):
        return self._service_response(request, obj, lambda: super(ServiceSaveMixin, self).response_change(request, obj))

    def log_addition(self, request, obj, message):
        if getattr(obj, "_service_error", "") or obj.pk is None:
            return None
        return super().log_addition(request, obj, message)

    def log_change(self, request, obj, message):
        if getattr(obj, "_service_error", ""):
            return None
        return super().log_change(request, obj, message)
