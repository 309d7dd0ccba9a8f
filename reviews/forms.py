from datetime import date

from django import forms


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field that takes several files at once (Django's documented recipe)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("widget", MultipleFileInput(attrs={"accept": ".md,.markdown,.json"}))
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, (list, tuple)):
            return [single(d, initial) for d in data]
        return [single(data, initial)]


class ReportUploadForm(forms.Form):
    files = MultipleFileField(label="FSAR reports (.md or .json)", help_text="Choose one or more files.")


class GatePauseForm(forms.Form):
    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}), strip=True)


class VoteForm(forms.Form):
    """A vote as the member wrote it: when it is refused, the page shows it again with
    the error under its field. The rationale's rule is the services' (check_rationale),
    stated beside the field and counted as one types (static/fsar/wordcount.js)."""

    choice = forms.ChoiceField(
        choices=[("approve", "Approve"), ("reject", "Reject"), ("request_changes", "Request changes")],
        widget=forms.RadioSelect,
        error_messages={"required": "Choose approve, reject or request changes."},
    )
    rationale = forms.CharField(
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": "Write why you vote this way."},
    )
    # The case version the member saw: a vote for an older one is refused (the case changed since).
    version = forms.IntegerField(min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs) -> None:
        from reviews.services import MIN_RATIONALE_CHARS, MIN_RATIONALE_WORDS

        super().__init__(*args, **kwargs)
        field = self.fields["rationale"]
        field.help_text = f"At least {MIN_RATIONALE_WORDS} words and {MIN_RATIONALE_CHARS} characters."
        field.widget.attrs.update(
            {
                "data-min-words": MIN_RATIONALE_WORDS,
                "data-min-chars": MIN_RATIONALE_CHARS,
                "aria-describedby": "rationale-rule rationale-count",
            }
        )

    def clean_rationale(self) -> str:
        from reviews.services import NotAllowed, check_rationale

        try:
            return check_rationale(self.cleaned_data["rationale"])
        except NotAllowed as exc:
            raise forms.ValidationError(f"Not recorded: {exc.message}.") from None


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=10_000, widget=forms.Textarea(attrs={"rows": 2}))


class CommentForm(forms.Form):
    text = forms.CharField(max_length=10_000, widget=forms.Textarea(attrs={"rows": 2}), label="Comment")


class QueueFilterForm(forms.Form):
    KINDS = [("", "Any subject"), ("report", "FSAR reports"), ("tasks", "Held tasks"), ("policy", "Policy changes")]
    SHOW = [
        ("", "Open"),
        ("mine", "Claimed by me"),
        ("unclaimed", "Unclaimed"),
        ("overdue", "Overdue"),
        ("advisory", "Advisory"),
    ]
    kind = forms.ChoiceField(choices=KINDS, required=False)
    show = forms.ChoiceField(choices=SHOW, required=False)
    min_severity = forms.IntegerField(required=False, min_value=0, label="Severity at least")
    after = forms.CharField(required=False, max_length=100, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs) -> None:
        from reviews import subjects

        super().__init__(*args, **kwargs)
        # The kinds upper apps registered (model versions, audits, ...) after the built-in ones.
        self.KINDS = [*self.KINDS, *subjects.filter_choices()]
        self.fields["kind"].choices = self.KINDS


class ExportRangeForm(forms.Form):
    start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), help_text="First day (UTC).")
    end = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), help_text="Last day (UTC), included.")
    format = forms.ChoiceField(choices=[("json", "JSON"), ("csv", "CSV")], initial="json")

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if end and end >= date.max:  # the range ends at midnight after the last day
            self.add_error("end", f"The last day must be before {date.max.isoformat()}.")
        elif start and end and end < start:
            raise forms.ValidationError("The last day is before the first.")
        return cleaned


class NotificationSettingsForm(forms.Form):
    case_opened = forms.BooleanField(required=False, label="A case opens for the committee")
    sla_reminders = forms.BooleanField(required=False, label="A case's time to decide is nearly up, or past")
