from django import forms

from assurance.models import AuditSuite, Source


class UploadForm(forms.Form):
    suite = forms.ModelChoiceField(
        queryset=AuditSuite.objects.filter(enabled=True).exclude(source=Source.BUILTIN), to_field_name="name"
    )
    ai_model = forms.CharField(max_length=200, label="Model version (ai_model)")
    report = forms.FileField(label="Report file (promptfoo results.json or garak report.jsonl)")
