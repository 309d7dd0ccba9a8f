from django.apps import AppConfig


class IndicatorsConfig(AppConfig):
    """Leading indicators (issue 17): series from the rollups and the reviews
    tables, damped change detection, alerts and their lifecycle, the
    reviewer-behaviour watch and honeypots (docs/indicators.md)."""

    name = "indicators"
    verbose_name = "Leading indicators"
