"""Durations as people read them on the metrics pages and the dashboard."""

import pytest

from tasks.formatting import duration, exact_ms


@pytest.mark.parametrize(
    "ms,shown",
    [
        (None, "—"),
        (0, "0 ms"),
        (850.4, "850 ms"),
        (999.6, "1.0 s"),
        (1300.0, "1.3 s"),
        (59_940, "59.9 s"),
        (59_960, "1 min 00 s"),
        (321_000, "5 min 21 s"),
        (3_599_400, "59 min 59 s"),
        (3_599_600, "1 h 00 min"),
        (7_530_000, "2 h 06 min"),
        (90_000_000_000, "25,000 h 00 min"),
    ],
)
def test_durations_read_in_the_unit_that_fits(ms, shown):
    assert duration(ms) == shown


def test_the_exact_figure_stays_available_for_a_tooltip():
    assert exact_ms(321_000) == "321,000.0 ms"
    assert exact_ms(None) == ""
