from django import forms


class AlertActionForm(forms.Form):
    """Acknowledge or resolve an alert: the reason is required and kept in its history."""

    reason = forms.CharField(
        max_length=2000,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": "Say why: the reason is kept in the alert's history."},
    )
