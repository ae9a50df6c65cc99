from __future__ import annotations

import pytest

from shipyard.core.serving.oip import Tensor, output_tensor, parse_infer
from shipyard.core.serving.routing import agree, in_canary, parse_canary
from shipyard.errors import InvalidInputError


def test_parse_infer_reads_nested_or_flat_data() -> None:
    rid, (t,) = parse_infer({"id": "a", "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32",
                                                    "data": [[1, 2], [3, 4.5]]}]})
    assert rid == "a" and t == Tensor("x", (2, 2), "FP32", [1, 2, 3, 4.5])
    assert t.rows() == [[1, 2], [3, 4.5]]


@pytest.mark.parametrize(("tensor", "field"), [
    ({"name": "x", "shape": [0], "datatype": "FP64", "data": []}, "inputs[0].shape"),
    ({"name": "x", "shape": [2, 0], "datatype": "FP64", "data": []}, "inputs[0].shape"),
    ({"name": "x", "shape": [1, 2], "datatype": "INT64", "data": [1, 2.5]}, "inputs[0].data"),
    ({"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, True]}, "inputs[0].data"),
    ({"name": "", "shape": [1], "datatype": "FP64", "data": [1]}, "inputs[0].name"),
    ({"name": "x", "shape": [1, True], "datatype": "FP64", "data": [1]}, "inputs[0].shape"),
    ({"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [[1], 2]}, "inputs[0].data"),
])
def test_bad_tensors_name_their_field(tensor: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInputError, match=field.replace("[", r"\[").replace("]", r"\]")):
        parse_infer({"inputs": [tensor]})


def test_output_tensors_carry_shape_and_datatype() -> None:
    assert output_tensor("p", [1, 2]) == {"name": "p", "shape": [2], "datatype": "INT64", "data": [1, 2]}
    assert output_tensor("p", [[0.5, 0.5]])["shape"] == [1, 2]


def test_canary_split_is_deterministic_and_near_its_weight() -> None:
    assert parse_canary("iris@4=10").percent == 10
    with pytest.raises(InvalidInputError):
        parse_canary("iris@4")
    with pytest.raises(InvalidInputError):
        parse_canary("iris@4=120")
    share = sum(in_canary(f"k{i}", 25) for i in range(20_000)) / 20_000
    assert abs(share - 0.25) < 0.01
    assert in_canary("same", 50) == in_canary("same", 50)
    assert not any(in_canary(f"k{i}", 0) for i in range(1000))


def test_agreement_compares_numbers_with_tolerance() -> None:
    assert agree([1, 2.0], [1, 2.0 + 1e-12]) and not agree([1, 2], [1, 3]) and not agree([1], [1, 1])
    assert agree(["a"], ["a"]) and not agree(["a"], ["b"])


@pytest.mark.parametrize(("datatype", "value", "ok"), [
    ("INT8", 127, True), ("INT8", 128, False), ("INT8", -129, False), ("UINT8", -5, False), ("UINT8", 255, True),
    ("INT64", 2**63 - 1, True), ("INT64", 2**70, False), ("UINT64", 2**64 - 1, True), ("UINT64", 2**64, False),
    ("INT32", 1.0, False), ("INT16", True, False), ("FP16", 70000.0, False), ("FP32", 1e39, False),
    ("FP64", 10**400, False), ("FP64", 2**70, True), ("BOOL", 1, False), ("BYTES", "a", True),
], ids=lambda v: repr(v)[:12])
def test_elements_must_fit_their_declared_datatype(datatype: str, value: object, ok: bool) -> None:
    body = {"inputs": [{"name": "x", "shape": [1], "datatype": datatype, "data": [value]}]}
    if ok:
        assert parse_infer(body)[1][0].data == [value]
    else:
        with pytest.raises(InvalidInputError, match=r"^inputs\[0\]\.data\[0\]: .*" + datatype):
            parse_infer(body)


def test_tensor_data_nested_past_the_bound_is_refused() -> None:
    data: object = [1.0]
    for _ in range(40):
        data = [data]
    with pytest.raises(InvalidInputError, match="nested deeper than"):
        parse_infer({"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": data}]})


@pytest.mark.parametrize("shape", [
    [1] * 33,  # valid JSON for one value, but more dimensions than any tensor has
    [3] * 200_000,  # multiplying these out took seconds of CPU under the GIL; 16 MiB of them, hours
    [10**5000, 1],  # its element count has too many digits to print: a ValueError, a 500
])
def test_shapes_too_long_or_too_large_are_refused_before_they_are_multiplied(shape: list[int]) -> None:
    with pytest.raises(InvalidInputError, match=r"^inputs\[0\]\.shape: "):
        parse_infer({"inputs": [{"name": "x", "shape": shape, "datatype": "FP64", "data": [1.0]}]})
