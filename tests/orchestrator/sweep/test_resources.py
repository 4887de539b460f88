import pytest
from pydantic import ValidationError

from orchestrator.sweep.resources import SlurmResources, time_minutes


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("90", 90),
        ("5:30", 6),
        ("2:00:00", 120),
        ("0:30:30", 31),
        ("1-12", 2160),
        ("1-0:30", 1470),
        ("2-01:00:00", 2940),
    ],
)
def test_slurm_time_formats(text: str, minutes: int) -> None:
    assert time_minutes(text) == minutes
    assert SlurmResources(time=text).timeout_minutes() == minutes


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"time": "2h"}, "is not a SLURM time"),
        ({"time": "0"}, "time '0' is zero, which SLURM takes as no limit at all; write --time unlimited"),
        ({"time": "0-0:00"}, "is zero, which SLURM takes as no limit"),
        ({"partition": "gpu; rm -rf ~"}, "is not a SLURM name"),
        ({"mem": "lots"}, "'lots' is not a SLURM memory size"),
        ({"qos": "$(id)"}, "is not a SLURM name"),
        ({"extra": {"Bad_Flag": "1"}}, "a flag name is lowercase letters"),
        ({"extra": {"array": "0-9"}}, "spd-sweep sets --array itself"),
        ({"extra": {"gres": "gpu:2"}}, "spd-sweep sets --gres itself; use its --gpus option"),
        ({"extra": {"comment": "two\nlines"}}, "newline"),
        ({"gpus": -1}, "greater than or equal to 0"),
    ],
)
def test_bad_resources_are_rejected(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SlurmResources(**fields)


def test_directives_in_a_stable_order_without_unset_ones() -> None:
    resources = SlurmResources(
        time="10", gpus=2, mem="4G", extra={"nodelist": "vm", "exclusive": "", "comment": "x y"}
    )
    assert resources.directives() == [
        ("time", "10"),
        ("gres", "gpu:2"),
        ("mem", "4G"),
        ("comment", "x y"),
        ("exclusive", ""),
        ("nodelist", "vm"),
    ]
    assert SlurmResources().directives() == []


@pytest.mark.parametrize("text", ["unlimited", "UNLIMITED", "Infinite"])
def test_no_time_limit_is_asked_for_by_name(text: str) -> None:
    resources = SlurmResources(time=text)
    assert resources.time == "UNLIMITED"
    assert ("time", "UNLIMITED") in resources.directives()
    assert resources.timeout_minutes() is None
