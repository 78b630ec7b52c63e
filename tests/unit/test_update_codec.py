"""Update codecs: round-trip bounds, error feedback, the node's state, the setting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fedward.core import update_codec as uc
from fedward.core.messages import TrainRequest
from fedward.errors import ValidationError
from fedward.learning.plans.sklearn_classifier import SGDClassifierPlan
from fedward.node import update_codecs as node_codecs
from fedward.node.jobs.job_folder import JobFolder
from fedward.protocol.params_wire import load_params, params_to_bytes, save_params
from fedward.protocol.update_wire import read_encoded, write_encoded
from fedward.researcher import Experiment
from fedward.researcher.privacy_settings import SecAgg
from fedward.researcher.update_codecs import CodecRounds, check_update_codec

RNG = np.random.default_rng(7)


def delta(scale: float = 1.0) -> dict[str, np.ndarray]:
    return {
        "w": (RNG.normal(size=(64, 33)) * scale).astype(np.float32),
        "b": (RNG.normal(size=33) * scale).astype(np.float64),
        "buffer:count": np.array([3], dtype=np.int64),
        "half": RNG.normal(size=5).astype(np.float16),
    }


def layout(params: dict[str, np.ndarray]) -> dict[str, tuple[tuple[int, ...], str]]:
    return {n: (v.shape, str(v.dtype)) for n, v in params.items()}


@pytest.mark.parametrize(("codec", "relative"), [("float16", 2.0**-11), ("bfloat16", 2.0**-8)])
def test_16_bit_codecs_round_to_nearest_within_half_a_unit(codec: str, relative: float) -> None:
    d = delta(1e-3)
    back = uc.decode(codec, uc.encode(codec, d), layout(d))
    for name in ("w", "b"):
        error = np.abs(back[name].astype(np.float64) - d[name])
        # half a unit in the last place, relative; float16 subnormals have an absolute step
        assert (error <= relative * np.abs(d[name]) + 2.0**-25).all(), name
        assert back[name].dtype == d[name].dtype
        assert error.max() > 0  # it did lose precision: the test can tell
    for name in ("buffer:count", "half"):  # not encoded: exact
        np.testing.assert_array_equal(back[name], d[name])


def test_bfloat16_rounds_ties_to_even() -> None:
    values = np.array([1 + 2**-8, 1 + 3 * 2**-8, -(1 + 2**-8), 3.0], dtype=np.float32)
    back = uc.from_bfloat16_bits(uc.to_bfloat16_bits(values))
    np.testing.assert_array_equal(back, [1.0, 1 + 2**-6, -1.0, 3.0])


def test_int8_is_within_half_a_level_of_its_scale() -> None:
    d = delta()
    wire = uc.encode("int8", d)
    back = uc.decode("int8", wire, layout(d))
    for name in ("w", "b"):
        step = np.abs(d[name]).max() / 127
        assert np.abs(back[name] - d[name]).max() <= step / 2 * (1 + 1e-5)
    assert wire["w"].dtype == np.int8 and wire[uc.SCALES].shape == (2,)


def test_float16_keeps_a_change_past_its_range_exact() -> None:
    d = {"stats": np.array([1e6, 1.0], dtype=np.float32), "w": np.ones(3, np.float32)}
    wire = uc.encode("float16", d)
    assert wire["stats"].dtype == np.float32 and wire["w"].dtype == np.float16
    np.testing.assert_array_equal(uc.decode("float16", wire, layout(d))["stats"], d["stats"])


def test_error_feedback_keeps_the_sent_sum_on_the_true_sum() -> None:
    residual = None
    true_sum = np.zeros((64, 33))
    sent_sum = np.zeros((64, 33))
    plain_sum = np.zeros((64, 33))  # int8 without feedback, for contrast
    for _ in range(60):
        d = {"w": (RNG.normal(size=(64, 33)) * 0.01 + 0.002).astype(np.float32)}
        wire, residual = uc.encode_with_feedback("int8", d, residual)
        true_sum += d["w"]
        sent_sum += uc.decode("int8", wire, layout(d))["w"]
        plain_sum += uc.decode("int8", uc.encode("int8", d), layout(d))["w"]
        # what was sent so far plus what is held back is what was meant, to float32 rounding
        np.testing.assert_allclose(sent_sum + residual["w"], true_sum, atol=1e-5)
        step = 0.06 / 127  # |d + residual| stays below ~0.06: half a level bounds the residual
        assert np.abs(residual["w"]).max() <= step
    assert np.abs(sent_sum - true_sum).max() < np.abs(plain_sum - true_sum).max()


def test_the_setting_names_the_closest_codec_and_refuses_secure_aggregation() -> None:
    with pytest.raises(ValidationError, match="did you mean 'float16'"):
        check_update_codec("float61")
    args = {"n_features": 2, "classes": [0, 1]}
    with pytest.raises(ValidationError, match="bfloat16"):
        Experiment(tags=["x"], training_plan=SGDClassifierPlan, model_args=args,
                   update_codec="bfloat61")  # fmt: skip
    with pytest.raises(ValidationError, match="secure aggregation"):
        Experiment(tags=["x"], training_plan=SGDClassifierPlan, model_args=args,
                   update_codec="int8", secure_aggregation=SecAgg())  # fmt: skip


def _request(**fields: object) -> TrainRequest:
    base = {
        "request_id": "r1", "experiment_id": "exp", "round_index": 0, "dataset_id": "ds",
        "plan_blob": "a" * 64, "plan_digest": "sha256:" + "b" * 64, "plan_class": "P",
        "params_blob": "c" * 64,
    }  # fmt: skip
    return TrainRequest(**{**base, **fields})  # type: ignore[arg-type]


def test_the_node_refuses_a_codec_it_does_not_know(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="does not know update codec 'zstd'"):
        node_codecs.receive_params(tmp_path, _request(update_codec="zstd"), tmp_path / "p")


def test_node_and_researcher_hold_the_same_reference_and_the_state_goes_with_the_job_folder(
    tmp_path: Path,
) -> None:
    """Three rounds through the researcher's CodecRounds and the node's functions, with
    blobs as files: the node's model is the researcher's bit for bit, one reference and one
    residual are kept, and removing the experiment's job folder removes them."""
    folder = JobFolder.create(tmp_path / "jobs", "exp")
    rounds = CodecRounds("int8")
    blobs: dict[str, bytes] = {}

    class Store:
        def put_bytes(self, data: bytes, readers: list[str]) -> str:
            import hashlib

            blob = hashlib.sha256(data).hexdigest()
            blobs[blob] = data
            return blob

    model = {"w": RNG.normal(size=(20, 10)).astype(np.float32), "n": np.array([1], np.int64)}
    for round_index in range(3):
        round_params = rounds.round_params(model)
        rounds.upload(Store(), round_params, ["node1"])  # type: ignore[arg-type]
        fields = rounds.request_fields("node1")
        request = _request(round_index=round_index, **fields)
        params_in = folder.inputs / f"job{round_index}.params.safetensors"
        params_in.write_bytes(blobs[request.params_blob])
        node_codecs.receive_params(folder.root, request, params_in)
        got = load_params(params_in)
        for name in model:  # the node trains from exactly the researcher's round model
            np.testing.assert_array_equal(got[name], round_params[name])
        assert (fields["params_base"] is None) == (round_index == 0)
        result = folder.outputs / "result.safetensors"
        save_params({"w": got["w"] + 0.01, "n": got["n"]}, result)
        encoded = node_codecs.encode_update(
            folder.root, request, params_in, result, folder.outputs / "enc.safetensors"
        )
        update = rounds.decode("node1", encoded)
        np.testing.assert_allclose(update["w"], got["w"] + 0.01, atol=1e-4)
        params_in.unlink()
        model = {"w": update["w"] * 0.5 + model["w"] * 0.5, "n": update["n"]}
    state = sorted(p.name for p in (folder.root / "codec").iterdir())
    assert state == [f"reference-{rounds.reference_id}.safetensors", "residual.safetensors"]
    folder.remove()
    assert not (folder.root / "codec").exists()


def test_the_researcher_sends_a_delta_only_to_nodes_that_hold_the_reference() -> None:
    rounds = CodecRounds("float16")

    class Store:
        def __init__(self) -> None:
            self.uploads: list[tuple[int, list[str]]] = []

        def put_bytes(self, data: bytes, readers: list[str]) -> str:
            self.uploads.append((len(data), readers))
            return f"{len(self.uploads):064x}"

    model = {"w": np.zeros((100, 100), np.float32)}
    store = Store()
    rounds.upload(store, rounds.round_params(model), ["a", "b"])  # type: ignore[arg-type]
    rounds.holders.add("a")  # a's update was decoded; b's was not
    rounds.upload(store, rounds.round_params({"w": model["w"] + 1}), ["a", "b"])  # type: ignore[arg-type]
    assert [readers for _, readers in store.uploads] == [["a", "b"], ["a"], ["b"]]
    full, half = len(params_to_bytes(model)), store.uploads[1][0]
    assert half < 0.51 * full
    assert rounds.request_fields("a")["params_base"] is not None
    assert rounds.request_fields("b")["params_base"] is None


def test_an_encoded_file_names_its_codec_and_base(tmp_path: Path) -> None:
    d = delta()
    path = tmp_path / "u.safetensors"
    write_encoded(path, "bfloat16", uc.encode("bfloat16", d), "e" * 64, layout(d))
    assert b'"BF16"' in path.read_bytes()[:4096]
    with pytest.raises(ValidationError, match="declares codec 'bfloat16', expected 'float16'"):
        read_encoded(path, "float16", "e" * 64, layout(d))
    with pytest.raises(ValidationError, match="another model"):
        read_encoded(path, "bfloat16", "f" * 64, layout(d))
    back = read_encoded(path, "bfloat16", "e" * 64, layout(d))
    assert sorted(back) == sorted(d)


def test_an_experiment_with_a_codec_resumed_after_round_two_ends_bit_for_bit(
    tmp_path: Path,
) -> None:
    """The researcher's reference, its id and its holders are kept next to the
    checkpoints: a resumed experiment sends the same deltas to the same nodes."""
    from tests.security.test_hostile_encoded_updates import CodecNode, MixedPlan
    from tests.unit.researcher_fake_node import NodeBehaviour
    from tests.unit.test_selection import Harness

    harness = Harness(state_dir=tmp_path / "researcher")
    try:
        for index, step in enumerate([0.5, 1.0, 2.0], start=1):
            harness.nodes[f"node{index}"] = CodecNode(
                harness.broker, harness.blob_space, f"node{index}",
                behaviour=NodeBehaviour(sample_count=10 * index), step=step,
            )  # fmt: skip
        options = {"training_plan": MixedPlan, "rounds": 4, "update_codec": "int8"}
        straight = harness.experiment(experiment_id="exp-straight", **options)
        straight.run()
        interrupted = harness.experiment(experiment_id="exp-resumed", **options)
        interrupted.run_once()
        interrupted.run_once()
        harness.federation.close()  # the researcher process is gone
        harness.federation = harness.connect()
        harness.wait_online()
        resumed = Experiment.load_checkpoint(
            "latest", federation=harness.federation, experiment_id="exp-resumed", progress=False
        )
        assert resumed.update_codec == "int8" and resumed.codec_rounds is not None
        assert resumed.codec_rounds.holders == {"node1", "node2", "node3"}
        resumed.run()
        final, expected = resumed.aggregated_params(), straight.aggregated_params()
        for name in expected:
            assert final[name].tobytes() == expected[name].tobytes(), name
        codec_dir = (resumed.checkpoint_dir() or tmp_path) / "codec"
        assert sorted(p.name for p in codec_dir.glob("*.safetensors")) == [
            "round-0003.safetensors",
            "round-0004.safetensors",
        ]
    finally:
        harness.close()
