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
