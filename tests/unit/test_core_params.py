from __future__ import annotations

import numpy as np
import pytest

from fedward.core.params import check_same_layout, params_count, params_nbytes
from fedward.errors import ValidationError


def reference() -> dict[str, np.ndarray]:
    return {"w": np.zeros((2, 3), dtype=np.float32), "b": np.zeros(3, dtype=np.float64)}


def test_size_and_count_add_up_over_every_tensor() -> None:
    params = reference()
    assert params_count(params) == 9
    assert params_nbytes(params) == 6 * 4 + 3 * 8


def test_same_layout_passes_whatever_the_values() -> None:
    other = {name: np.ones_like(a) for name, a in reference().items()}
    check_same_layout(reference(), other)


def test_missing_and_unexpected_names_are_both_listed() -> None:
    other = {"w": reference()["w"], "extra": np.zeros(1)}
    with pytest.raises(ValidationError, match=r"missing \['b'\], unexpected \['extra'\]"):
        check_same_layout(reference(), other)


def test_a_shape_or_dtype_change_names_the_parameter_and_both_layouts() -> None:
    other = reference()
    other["w"] = np.zeros((3, 2), dtype=np.float32)
    with pytest.raises(ValidationError, match=r"'w' is float32\[3, 2\], expected float32\[2, 3\]"):
        check_same_layout(reference(), other)
    other = reference()
    other["b"] = np.zeros(3, dtype=np.float32)
    with pytest.raises(ValidationError, match=r"'b' is float32\[3\], expected float64\[3\]"):
        check_same_layout(reference(), other)
