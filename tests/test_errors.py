"""The one-line form of pydantic validation errors shared by the config, the protocol and the device profiles."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from modnas.errors import ModnasError, validation_error_line


class _Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: int = 1


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    betas: tuple[float, float] = (0.5, 0.9)
    latencies: dict[str, float] = {}
    inner: _Inner = _Inner()
    checked: int = 0

    @field_validator("checked")
    @classmethod
    def _checked(cls, value: int) -> int:
        if value == 1:
            raise ValueError("checked must not be 1")
        if value == 2:
            raise ModnasError("2 is refused with its own line")
        if value == 3:
            raise ValueError("a message\nover two lines")
        return value

    @model_validator(mode="after")
    def _whole(self) -> _Model:
        if self.name == "whole":
            raise ValueError("the whole mapping is wrong")
        return self


def _line(data: dict, subject: str = "thing") -> str:
    with pytest.raises(ValidationError) as info:
        _Model.model_validate(data)
    return validation_error_line(info.value, subject)


@pytest.mark.parametrize(
    ("data", "line"),
    [
        ({"name": "a", "inner": {"stepz": 1}}, "unknown thing key 'inner.stepz'"),
        ({}, "thing key 'name' is missing"),
        ({"name": "a", "inner": {"steps": "x"}},
         "thing inner.steps: Input should be a valid integer, unable to parse string as an integer (got 'x')"),
        ({"name": "a", "betas": [0.5, "y"]},
         "thing betas[1]: Input should be a valid number, unable to parse string as a number (got 'y')"),
        ({"name": "a", "latencies": {"|a~0|+|b~1|": "z"}},
         ("thing latencies['|a~0|+|b~1|']: Input should be a valid number, unable to parse string as a number "
          "(got 'z')")),
        ({"name": "a", "checked": 1}, "thing checked: checked must not be 1 (got 1)"),
        ({"name": "a", "checked": 2}, "2 is refused with its own line"),
        ({"name": "a", "checked": 3}, "thing checked: a message over two lines (got 3)"),
        ({"name": "whole"}, "thing: the whole mapping is wrong"),
        ({"name": "a", "inner": 5}, "thing inner: Input should be a valid dictionary or instance of _Inner (got 5)"),
    ],
)
def test_validation_error_line(data, line):
    assert _line(data) == line

