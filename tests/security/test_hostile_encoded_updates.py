"""Hostile encoded updates: a node that answers a codec round with crafted bytes.

With ``update_codec`` the researcher decodes each update before any aggregator sees it
(``researcher.update_codecs``), so the codec's decoder is a new door for a hostile node.
Every attack here is one node (``node2``) answering each round with an encoded update
crafted to crash or poison the researcher: a false codec or base, a plain update where
an encoded one is due, int8 level -128, NaN/inf/negative/huge scales, scales of the
wrong length, non-finite float16 and bfloat16 values, deltas that overflow once added
to the model, extra, missing, reshaped or retyped tensors. The round must go on with the
honest nodes (which run the node's real codec code, ``node.update_codecs``), name the
hostile node and the reason, and end with exactly the parameters the honest nodes alone
give, for every aggregator. No numpy warning may escape (filterwarnings error).
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fedward.core import update_codec
from fedward.core.messages import TrainReply, TrainRequest
from fedward.core.params import Params
from fedward.learning.plan import SCAFFOLD_DELTA_CONTROL, SCAFFOLD_SERVER_CONTROL
from fedward.node import update_codecs as node_codecs
from fedward.protocol.params_wire import (
    load_params,
    params_from_bytes,
    params_to_bytes,
    save_params,
)
from fedward.protocol.update_wire import encoded_bytes
from fedward.researcher.experiment import Experiment
from tests.security.test_hostile_updates import AGGREGATORS, MixedPlan, control_delta, trained
from tests.unit.researcher_fake_node import FakeNode, NodeBehaviour
from tests.unit.test_selection import Harness

pytestmark = pytest.mark.filterwarnings("error")

HOSTILE = "node2"
HONEST = {"node1": 10, "node3": 30, "node4": 20}
LAYOUT = {n: (v.shape, str(v.dtype)) for n, v in MixedPlan({}).init_params().items()}


def _receive(node: FakeNode, root: Path, request: TrainRequest) -> tuple[Path, Params | None]:
    """The node's side of the downlink, with the node's own code: full parameters."""
    path = root / "inputs.safetensors"
    path.unlink(missing_ok=True)  # as the node's download: a new file, not an overwrite
    path.write_bytes(node.blobs.get_bytes(request.params_blob))
    node_codecs.receive_params(root, request, path)
    blob = request.extra_blobs.get(SCAFFOLD_SERVER_CONTROL)
    controls = params_from_bytes(node.blobs.get_bytes(blob)) if blob else None
    return path, controls


def _extras(node: FakeNode, researcher_id: str, controls: Params | None) -> dict[str, str]:
    if controls is None:
        return {}
    data = params_to_bytes(control_delta(controls))
    return {SCAFFOLD_DELTA_CONTROL: node.blobs.put_bytes(data, readers=[researcher_id])}


class CodecNode(FakeNode):
    """An honest node: the node's real receive/encode steps around a step of its own."""

    def __init__(self, *args: Any, step: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.step = step
        self.root = Path(tempfile.mkdtemp(prefix=f"codec-{self.node_id}-"))

    def _on_train(self, researcher_id: str, request: TrainRequest) -> None:
        root = self.root / request.experiment_id  # as the node's job folders
        root.mkdir(exist_ok=True)
        params_in, controls = _receive(self, root, request)
        result = root / "result.safetensors"
        save_params(trained(load_params(params_in), self.step), result)
        dest = root / "encoded.safetensors"
        upload = node_codecs.encode_update(root, request, params_in, result, dest)
        extras = _extras(self, researcher_id, controls)
        samples = self.behaviour.sample_count
        self.reply(researcher_id, _reply(self, request, upload.read_bytes(), samples, extras))


def _reply(
    node: FakeNode, request: TrainRequest, data: bytes, samples: int, extras: dict[str, str]
) -> TrainReply:
    return TrainReply(
        request_id=request.request_id,
        experiment_id=request.experiment_id,
        round_index=request.round_index,
        params_blob=node.blobs.put_bytes(data, readers=["alice"]),
        sample_count=samples,
        extra_blobs=extras,
    )


#: (codec, wire tensors, base, layout) -> bytes to send; gets the honest wire tensors.
Attack = Callable[[str, dict[str, np.ndarray], str], bytes]


class HostileCodecNode(FakeNode):
    def __init__(self, *args: Any, attack: Attack, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.attack = attack
        self.root = Path(tempfile.mkdtemp(prefix="codec-hostile-"))

    def _on_train(self, researcher_id: str, request: TrainRequest) -> None:
        params_in, controls = _receive(self, self.root, request)
        reference = load_params(params_in)
        delta = update_codec.delta_of(trained(reference, 0.25), reference)
        wire = update_codec.encode(request.update_codec, delta)
        assert request.params_ref is not None
        data = self.attack(request.update_codec, wire, request.params_ref)
        extras = _extras(self, researcher_id, controls)
        self.reply(researcher_id, _reply(self, request, data, 10, extras))


def honest(codec: str, wire: dict[str, np.ndarray], base: str) -> bytes:
    return encoded_bytes(codec, wire, base, LAYOUT)


def changed(**tensors: np.ndarray) -> Attack:
    def attack(codec: str, wire: dict[str, np.ndarray], base: str) -> bytes:
        return honest(codec, {**wire, **tensors}, base)

    return attack


def without(name: str) -> Attack:
    def attack(codec: str, wire: dict[str, np.ndarray], base: str) -> bytes:
        return honest(codec, {n: v for n, v in wire.items() if n != name}, base)

    return attack


def declared(codec_said: str) -> Attack:
    return lambda codec, wire, base: encoded_bytes(codec_said, wire, base, LAYOUT)


def bf16_bits(value: float) -> np.ndarray:
    return update_codec.to_bfloat16_bits(np.full((2, 3), value, dtype=np.float32))


def scales(*values: float) -> np.ndarray:
    return np.asarray(values, dtype=np.float32)


# case -> (codec, attack, what the refusal says)
ATTACKS: dict[str, tuple[str, Attack, str]] = {
    "declares another codec": ("int8", declared("float16"), "declares codec 'float16'"),
    "delta against another model": ("float16", lambda c, w, b: honest(c, w, "f" * 64),
                                    "another model"),
    "a plain update instead": ("float16", lambda c, w, b: params_to_bytes(
        update_codec.apply_delta({n: np.zeros(s, d) for n, (s, d) in LAYOUT.items()}, w)),
        "format fedward-update"),
    "int8 level -128": ("int8", changed(w=np.full((2, 3), -128, np.int8)), "-128"),
    "NaN scale": ("int8", changed(__int8_scales__=scales(np.nan, 1.0)), "scale"),
    "inf scale": ("int8", changed(__int8_scales__=scales(np.inf, 1.0)), "scale"),
    "negative scale": ("int8", changed(__int8_scales__=scales(-1.0, 1.0)), "scale"),
    "scale 1e30": ("int8", changed(__int8_scales__=scales(1e30, 1.0)), "scale"),
    "scales too few": ("int8", changed(__int8_scales__=scales(1.0)), "__int8_scales__"),
    "scales as float64": ("int8", changed(__int8_scales__=np.ones(2)), "__int8_scales__"),
    "float16 inf": ("float16", changed(w=np.full((2, 3), np.inf, np.float16)), "non-finite"),
    "float16 NaN": ("float16", changed(b=np.full(2, np.nan, np.float16)), "non-finite"),
    "bfloat16 NaN bits": ("bfloat16", changed(w=bf16_bits(np.nan)), "non-finite"),
    "bfloat16 inf bits": ("bfloat16", changed(w=bf16_bits(np.inf)), "non-finite"),
    "kept float32 overflows once added": ("float16", changed(w=np.full((2, 3), 3.4e38, np.float32)),
                                          "non-finite|beyond"),
    "kept float64 past MAX_ABS": ("float16", changed(b=np.full(2, 1e300)), "beyond"),
    "extra tensor": ("float16", changed(extra=np.zeros(2, np.float16)), "should not"),
    "missing tensor": ("bfloat16", without("w"), "lacks"),
    "reshaped": ("float16", changed(w=np.zeros((3, 2), np.float16)), "expected"),
    "float64 where float16 or float32": ("float16", changed(w=np.zeros((2, 3))), "expected"),
    "int buffer retyped": ("int8", changed(**{"buffer:count": np.zeros(1, np.int32)}), "expected"),
    "not safetensors": ("float16", lambda c, w, b: b"\x10" + b"\x00" * 7 + b"{" * 16, "not valid"),
    "header larger than the file": ("int8", lambda c, w, b: struct.pack("<Q", 1 << 40) + b"{}",
                                    "larger"),
}  # fmt: skip


def run(aggregator: str, codec: str, attack: Attack | None) -> Experiment:
    harness = Harness()
    try:
        for index, (node_id, samples) in enumerate(sorted(HONEST.items())):
            harness.nodes[node_id] = CodecNode(
                harness.broker, harness.blob_space, node_id,
                behaviour=NodeBehaviour(sample_count=samples), step=0.5 + index,
            )  # fmt: skip
        if attack is not None:
            harness.nodes[HOSTILE] = HostileCodecNode(
                harness.broker, harness.blob_space, HOSTILE, attack=attack
            )
        experiment = harness.experiment(
            training_plan=MixedPlan,
            aggregator=AGGREGATORS[aggregator](),
            rounds=2,
            min_replies=len(HONEST),
            update_codec=codec,
        )
        experiment.run()
        return experiment
    finally:
        harness.close()


_honest: dict[tuple[str, str], Params] = {}


def honest_only(aggregator: str, codec: str) -> Params:
    if (aggregator, codec) not in _honest:
        _honest[aggregator, codec] = run(aggregator, codec, None).aggregated_params()
    return _honest[aggregator, codec]


EVERY_AGGREGATOR = ["NaN scale", "float16 inf", "declares another codec", "extra tensor"]
MATRIX = [(case, "fedavg") for case in sorted(ATTACKS)] + [
    (case, aggregator)
    for aggregator in sorted(AGGREGATORS)
    if aggregator != "fedavg"
    for case in EVERY_AGGREGATOR
]


@pytest.mark.parametrize(("case", "aggregator"), MATRIX)
def test_hostile_encoded_update_is_refused_without_influence(case: str, aggregator: str) -> None:
    codec, attack, reason = ATTACKS[case]
    experiment = run(aggregator, codec, attack)
    assert len(experiment.history) == 2
    for record in experiment.history:
        assert record.succeeded == sorted(HONEST)
        hostile = record.nodes[HOSTILE]
        assert hostile.status == "failed"
        assert HOSTILE in hostile.error
        assert any(part in hostile.error for part in reason.split("|")), hostile.error
    result = experiment.aggregated_params()
    expected = honest_only(aggregator, codec)
    assert result.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(result[name], expected[name], err_msg=name)
        assert result[name].dtype == expected[name].dtype


@pytest.mark.parametrize("aggregator", sorted(AGGREGATORS))
@pytest.mark.parametrize("codec", ["float16", "bfloat16", "int8"])
def test_every_aggregator_gets_decoded_updates_close_to_plain_ones(
    aggregator: str, codec: str
) -> None:
    plain = run(aggregator, "none", None).aggregated_params()
    coded = honest_only(aggregator, codec)
    for name, value in plain.items():
        assert coded[name].dtype == value.dtype
        np.testing.assert_allclose(coded[name], value, rtol=2e-2, atol=2e-2, err_msg=name)
