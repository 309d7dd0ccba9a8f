from django import forms

from billing import money


class PeriodForm(forms.Form):
    period = forms.CharField(max_length=7, help_text="YYYY-MM")

    def clean_period(self) -> str:
        period = self.cleaned_data["period"].strip()
        try:
            money.parse_period(period)
        except money.BadPeriod as exc:
            raise forms.ValidationError(str(exc)) from exc
        return period
