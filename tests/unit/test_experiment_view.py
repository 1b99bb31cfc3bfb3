"""How experiment numbers are written for people: p-values, plain numbers, and which
experiment the page opens on."""

import pytest

from analysis.experiment_view import default_experiment, number_text, p_value_text


@pytest.mark.parametrize(
    ("p", "text"),
    [(3.2e-7, "< 0.001"), (0.00099, "< 0.001"), (0.001, "0.001"), (0.0312, "0.031"),
     (0.5, "0.500"), (1.0, "1.000"), (float("nan"), "—")],
)  # fmt: skip
def test_p_values_never_print_in_scientific_notation(p, text):
    assert p_value_text(p) == text


@pytest.mark.parametrize(
    ("value", "signed", "text"),
    [(1234.5, False, "1,234"), (12.345, True, "+12.3"), (-0.0001234, True, "-0.000123"),
     (0.0, True, "0"), (2.5e-9, False, "0.000000"), (float("inf"), True, "unbounded")],
)  # fmt: skip
def test_numbers_have_three_significant_digits_without_exponents(value, signed, text):
    assert number_text(value, signed) == text


def test_default_is_the_running_experiment_with_most_units():
    keys = ["new-draft", "small", "big", "found-only"]
    statuses = {"new-draft": "draft", "small": "running", "big": "paused"}
    units = {"small": 10, "big": 5000, "found-only": 900}
    # found-only has no saved status: the agent is recording it, so it counts as running
    assert default_experiment(keys, statuses, units) == "found-only"
    assert default_experiment(keys[:3], statuses, units) == "small"
    assert (
        default_experiment(["a-draft", "b"], {"a-draft": "draft", "b": "stopped"}, {"b": 3}) == "b"
    )
    assert default_experiment(["a-draft"], {"a-draft": "draft"}, {}) == "a-draft"
    assert default_experiment([], {}, {}) is None
