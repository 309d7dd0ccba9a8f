from django import forms

from billing import periods


class PeriodForm(forms.Form):
    period = forms.CharField(max_length=7, help_text="YYYY-MM")

    def clean_period(self) -> str:
        period = self.cleaned_data["period"].strip()
        try:
            periods.parse_period(period)
        except periods.BadPeriod as exc:
            raise forms.ValidationError(str(exc)) from exc
        return period
