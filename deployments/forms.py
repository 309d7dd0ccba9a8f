from django import forms

from deployments.models import VersionStatus


class VersionFilterForm(forms.Form):
    family = forms.CharField(required=False, max_length=100)
    status = forms.ChoiceField(choices=[("", "Any status"), *VersionStatus.choices], required=False)
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)


class RetireForm(forms.Form):
    reason = forms.CharField(
        max_length=2000,
        min_length=10,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why nobody should run this version any more: new tasks on it are denied.",
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=2000,
        min_length=10,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why, in a sentence: it goes on the rollout's history and the audit chain.",
    )


class RolloutForm(forms.Form):
    candidate = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
    weights = forms.CharField(
        max_length=200, initial="5, 25, 50, 100", help_text="Candidate weights in percent, rising to 100."
    )
    min_minutes = forms.IntegerField(min_value=0, max_value=7 * 24 * 60, initial=30, label="Minimum minutes per step")
    min_tasks = forms.IntegerField(
        min_value=0, max_value=1_000_000, initial=20, label="Minimum finished candidate tasks per step"
    )
    auto_promote = forms.BooleanField(
        required=False, initial=True, label="Move to the next step when an analysis passes (else confirm by hand)"
    )
    reason = forms.CharField(max_length=2000, min_length=10, widget=forms.Textarea(attrs={"rows": 2}))
