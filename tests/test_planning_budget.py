"""A longer budget is spent where it pays: the planned resolution first, then the network's width."""

import pytest

from tests.test_planning import fingerprint, machine, plan_for
from unet.planning.rules import WIDE_PASSES, WIDTH

MINUTES = (10, 20, 60)


def street_scenes():
    """A street-scene training set as the fingerprint sees it: 367 RGB photographs of 360x480, 11 classes
    from road and sky down to poles a few pixels wide."""
    fractions = (0.27, 0.22, 0.16, 0.12, 0.08, 0.06, 0.04, 0.025, 0.015, 0.01, 0.01)
    widths = (120.0, 90.0, 60.0, 40.0, 30.0, 20.0, 12.0, 8.0, 6.0, 4.0, 3.0)
    return fingerprint(images=367, size=(360, 480), channels=3, fractions=fractions, widths=widths)


def plans(fp, rates):
    return {minutes: plan_for(fp, budget_s=60 * minutes, rates=rates) for minutes in MINUTES}


def grows(values: list) -> bool:
    return all(a <= b for a, b in zip(values, values[1:], strict=False)) and values[-1] > values[0]


def test_street_scenes_get_full_resolution_only_with_the_longer_budget():
    by_budget = plans(street_scenes(), machine(fp32=6, bf16=6))
    scales = [by_budget[m].value("data.train_scale") for m in MINUTES]
    assert grows(scales), scales
    assert scales[-1] == 1.0 and scales[1] < 1.0
    # a budget spent on resolution leaves the width at the device's
    assert by_budget[20].value("model.net.base_channels") == WIDTH["cpu"]
    assert "resolution first" in by_budget[20].choices["model.net.base_channels"].reason


def test_a_small_set_gets_a_wider_network_from_a_longer_budget():
    by_budget = plans(fingerprint(images=20, size=(512, 512)), machine(fp32=12, bf16=12))
    widths = [by_budget[m].value("model.net.base_channels") for m in MINUTES]
    assert grows(widths), widths
    assert all(by_budget[m].value("data.train_scale") == 1.0 for m in MINUTES)
    reason = by_budget[60].choices["model.net.base_channels"].reason
    assert reason.startswith(f"{widths[-1]}: the budget sees") and f"over {WIDE_PASSES}" in reason


def test_the_wider_network_is_the_one_timed_for_the_rest_of_the_plan():
    rates = machine(fp32=12, bf16=12)
    plan = plan_for(fingerprint(images=20, size=(512, 512)), budget_s=3600, rates=rates)
    width = plan.value("model.net.base_channels")
    assert width > WIDTH["cpu"]
    assert [timed[0]["base_channels"] for timed in rates.timed] == [WIDTH["cpu"], width]
    assert plan.facts["measured_at"]["base_channels"] == width


@pytest.mark.parametrize("budget_s", [None, 60])
def test_no_budget_or_a_short_one_keeps_the_devices_width(budget_s):
    plan = plan_for(
        fingerprint(images=20, size=(512, 512)), budget_s=budget_s, rates=machine(fp32=12, bf16=12)
    )
    assert plan.value("model.net.base_channels") == WIDTH["cpu"]
