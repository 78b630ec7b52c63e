"""Hostile updates: a node that read the researcher's code and answers with what hurts most.

The researcher trusts nothing in a ``TrainReply``: not the sample count, not the size of
the blob, not one number of the safetensors header, not the values. Each attack here is
one node (``node2``) answering every train request with a crafted update; the round must
go on with the honest nodes, name the hostile one and the reason in its history, and end
with exactly the parameters the honest nodes alone would have given, for every
aggregator. No OverflowError, MemoryError or numpy warning may come out of ``run()``.

The first part runs over the in-memory transport (fast enough for the full matrix of
attacks x aggregators); the last test runs a few of the same attacks through the real
processes: Mosquitto, the upload server, node processes, and an impostor MQTT client
holding node3's credentials.
"""

from __future__ import annotations

import io
import json
import logging
import queue
import re
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from fedward.core.messages import (
    DatasetsReply,
    DatasetSummary,
    ErrorReply,
    ListRequest,
    Message,
    NodePresence,
    PingRequest,
    PongReply,
    SearchRequest,
    TrainReply,
    TrainRequest,
)
from fedward.core.params import Params
from fedward.demo.breast_cancer import demo_training_args
from fedward.demo.data import breast_cancer_split
from fedward.demo.local_federation import LocalFederation
from fedward.learning.plan import (
    SCAFFOLD_DELTA_CONTROL,
    SCAFFOLD_SERVER_CONTROL,
    DatasetView,
    Progress,
    TrainingPlan,
    TrainOutcome,
)
from fedward.learning.plans.sklearn_classifier import SGDClassifierPlan
from fedward.protocol import topics
from fedward.protocol.codec import decode_request, encode, encode_presence
from fedward.protocol.params_wire import params_from_bytes, params_to_bytes
from fedward.researcher.aggregators import (
    Aggregator,
    CoordinateMedian,
    FedAdagrad,
    FedAdam,
    FedAvg,
    FedProx,
    FedYogi,
    Krum,
    Scaffold,
    TrimmedMean,
)
from fedward.researcher.experiment import Experiment
from fedward.transport.channel import Will
from fedward.transport.http_blobs import HttpBlobStore
from fedward.transport.mqtt import MqttChannel
from tests.unit.researcher_fake_node import FakeNode, NodeBehaviour
from tests.unit.test_selection import Harness

pytestmark = pytest.mark.filterwarnings("error")  # a numpy RuntimeWarning fails the case

HOSTILE = "node2"
HONEST = {"node1": 10, "node3": 30, "node4": 20}  # node id -> sample count


class MixedPlan(TrainingPlan):
    """Float32, float16, float64 and an integer buffer: every dtype a check must cover.
    The fake nodes never run it: they "train" by arithmetic of their own."""

    framework = "numpy"

    def init_params(self, seed: int = 0) -> dict[str, np.ndarray]:
        return {
            "w": np.zeros((2, 3), dtype=np.float32),
            "h": np.zeros(4, dtype=np.float16),
            "b": np.zeros(2, dtype=np.float64),
            "buffer:count": np.zeros(1, dtype=np.int64),
        }

    def train(
        self,
        params: dict[str, np.ndarray],
        dataset: DatasetView,
        training_args: Mapping[str, Any],
        progress: Progress,
    ) -> TrainOutcome:
        raise NotImplementedError


# --- crafting updates -----------------------------------------------------------------------


def safetensors(header: Any, data: bytes, *, header_size: int | None = None) -> bytes:
    text = json.dumps(header).encode()
    size = len(text) if header_size is None else header_size
    return struct.pack("<Q", size) + text + data


def trained(params: Params, step: float) -> Params:
    return {name: (value + step).astype(value.dtype) for name, value in params.items()}


def control_delta(controls: Params, value: float = 0.25) -> Params:
    return {name: np.full_like(control, value) for name, control in controls.items()}


@dataclass
class Crafted:
    """What the hostile node sends: update bytes, a sample count, extras (name -> bytes;
    None: an honest control delta when the aggregator asks for one)."""

    update: bytes
    sample_count: int = 10
    extras: dict[str, bytes] | None = None


Attack = Callable[[Params, Params | None], Crafted]


def poisoned(name: str, value: float | int) -> Attack:
    def attack(params: Params, controls: Params | None) -> Crafted:
        update = trained(params, 1.0)
        update[name] = update[name].copy()
        update[name].reshape(-1)[-1] = value
        return Crafted(params_to_bytes(update))

    return attack


def renamed(params: Params, controls: Params | None) -> Crafted:
    update = trained(params, 1.0)
    update["w2"] = update.pop("w")
    return Crafted(params_to_bytes(update))


def with_extra_tensor(params: Params, controls: Params | None) -> Crafted:
    return Crafted(params_to_bytes({**trained(params, 1.0), "evil": np.ones(3, np.float32)}))


def without_tensor(params: Params, controls: Params | None) -> Crafted:
    update = trained(params, 1.0)
    del update["b"]
    return Crafted(params_to_bytes(update))


def retyped(params: Params, controls: Params | None) -> Crafted:
    update = trained(params, 1.0)
    update["w"] = update["w"].astype(np.float64)
    return Crafted(params_to_bytes(update))


def reshaped(params: Params, controls: Params | None) -> Crafted:
    update = trained(params, 1.0)
    update["w"] = update["w"].reshape(3, 2)
    return Crafted(params_to_bytes(update))


def oversized(params: Params, controls: Params | None) -> Crafted:
    # Far past the largest file the global layout allows: refused while downloading.
    padding = np.zeros(1 << 20, np.float32)
    return Crafted(params_to_bytes({**trained(params, 1.0), "padding": padding}))


def header_only(header: Any, data: bytes = b"", **options: Any) -> Attack:
    return lambda params, controls: Crafted(safetensors(header, data, **options))


def f32(shape: Any, offsets: Any) -> dict[str, Any]:
    return {"dtype": "F32", "shape": shape, "data_offsets": offsets}


def claims_samples(count: int) -> Attack:
    return lambda params, controls: Crafted(params_to_bytes(trained(params, 1.0)), count)


def delta_with(change: Callable[[Params], Params]) -> Attack:
    def attack(params: Params, controls: Params | None) -> Crafted:
        assert controls is not None
        extras = {SCAFFOLD_DELTA_CONTROL: params_to_bytes(change(control_delta(controls)))}
        return Crafted(params_to_bytes(trained(params, 1.0)), extras=extras)

    return attack


def nan_in(name: str) -> Callable[[Params], Params]:
    def change(delta: Params) -> Params:
        delta[name] = delta[name].copy()
        delta[name].reshape(-1)[0] = np.nan
        return delta

    return change


# name -> (attack, what the history must say about node2)
ATTACKS: dict[str, tuple[Attack, str]] = {
    "NaN in float32": (poisoned("w", np.nan), r"non-finite values .* tensor 'w'"),
    "+inf in float32": (poisoned("w", np.inf), r"non-finite values .* tensor 'w'"),
    "-inf in float16": (poisoned("h", -np.inf), r"non-finite values .* tensor 'h'"),
    "NaN in float64": (poisoned("b", np.nan), r"non-finite values .* tensor 'b'"),
    "finite 3e38 (overflows the mean)": (poisoned("w", 3e38), r"values beyond .* tensor 'w'"),
    "int64 near 2**63": (poisoned("buffer:count", 2**63 - 1), r"values beyond .* 'buffer:count'"),
    "shape 2**70": (
        header_only({"w": f32([2**70], [0, 16])}, b"\0" * 16),
        r"tensor 'w' claims an impossible size",
    ),
    "shape product 2**64 (wraps to 0 in int64)": (
        header_only({"w": f32([2**32, 2**32], [0, 0])}),
        r"tensor 'w' claims an impossible size",
    ),
    "zero dim beside 2**62": (
        header_only({"w": f32([0, 2**62], [0, 0])}),
        r"tensor 'w' claims an impossible size",
    ),
    "negative dimensions": (
        header_only({"w": f32([-2, -3], [0, 24])}, b"\0" * 24),
        r"non-negative int",
    ),
    "bool and float dimensions": (
        header_only({"w": f32([True, 3.0], [0, 12])}, b"\0" * 12),
        r"non-negative int",
    ),
    "string offsets": (header_only({"w": f32([1], ["0", "4"])}, b"\0" * 4), r"two ints"),
    "offsets past the end of the file": (
        header_only({"w": f32([4], [0, 16])}, b"\0" * 8),
        r"outside the file",
    ),
    "overlapping tensors": (
        header_only({"w": f32([4], [0, 16]), "v": f32([2], [8, 16])}, b"\0" * 16),
        r"holes or overlaps",
    ),
    "header size larger than the file": (
        header_only({"w": f32([1], [0, 4])}, b"\0" * 4, header_size=1 << 40),
        r"header size",
    ),
    "header is a list": (header_only([1, 2, 3]), r"not a JSON object"),
    "metadata not str->str": (
        header_only({"__metadata__": {"format": 1}, "w": f32([1], [0, 4])}, b"\0" * 4),
        r"__metadata__",
    ),
    "duplicate tensor name": (
        lambda params, controls: Crafted(
            struct.pack("<Q", 108)
            + b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
            + b'"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
            + b"\0" * 4
        ),
        r"names 'w' twice",
    ),
    "pickle instead of safetensors": (
        lambda params, controls: Crafted(b"\x80\x04\x95" + b"cos\nsystem\n" * 10),
        r"not valid safetensors",
    ),
    "wrong tensor name": (renamed, r"names differ: missing \['w'\], unexpected \['w2'\]"),
    "extra tensor": (with_extra_tensor, r"unexpected \['evil'\]"),
    "missing tensor": (without_tensor, r"missing \['b'\]"),
    "wrong dtype": (retyped, r"'w' is float64\[2, 3\], expected float32\[2, 3\]"),
    "wrong shape": (reshaped, r"'w' is float32\[3, 2\], expected float32\[2, 3\]"),
    "blob over the layout's size": (oversized, r"larger than the limit of"),
    "sample count 10**400": (claims_samples(10**400), r"claims a huge number of training"),
    "sample count 0": (claims_samples(0), r"claims 0 training samples"),
}
SCAFFOLD_ATTACKS: dict[str, tuple[Attack, str]] = {
    "NaN in the control delta": (
        delta_with(nan_in("w")),
        r"non-finite values .* tensor 'w'",
    ),
    "control delta of the wrong shape": (
        delta_with(lambda delta: {**delta, "w": np.zeros((6,), np.float32)}),
        r"extra 'scaffold_delta_control' tensor 'w' is float32\[6\]",
    ),
    "control delta missing": (
        lambda params, controls: Crafted(params_to_bytes(trained(params, 1.0)), extras={}),
        r"no 'scaffold_delta_control' extra",
    ),
    "control delta over its size": (
        delta_with(lambda delta: {**delta, "padding": np.zeros(1 << 20, np.float32)}),
        r"larger than the limit of",
    ),
}

AGGREGATORS: dict[str, Callable[[], Aggregator]] = {
    "fedavg": FedAvg,
    "fedprox": FedProx,
    "fedadam": FedAdam,
    "fedyogi": FedYogi,
    "fedadagrad": FedAdagrad,
    "median": CoordinateMedian,
    "trimmed_mean": lambda: TrimmedMean(trim_ratio=0.2),
    "krum": lambda: Krum(byzantine=0),
    "scaffold": Scaffold,
}


# --- the nodes ------------------------------------------------------------------------------


def _request_params(node: FakeNode, request: TrainRequest) -> tuple[Params, Params | None]:
    params = params_from_bytes(node.blobs.get_bytes(request.params_blob))
    blob = request.extra_blobs.get(SCAFFOLD_SERVER_CONTROL)
    controls = params_from_bytes(node.blobs.get_bytes(blob)) if blob else None
    return params, controls


class HonestNode(FakeNode):
    """Adds a step of its own to every parameter; sends a control delta when asked to."""

    def __init__(self, *args: Any, step: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.step = step

    def _on_train(self, researcher_id: str, request: TrainRequest) -> None:
        params, controls = _request_params(self, request)
        extras = {}
        if controls is not None:
            extras[SCAFFOLD_DELTA_CONTROL] = self.blobs.put_bytes(
                params_to_bytes(control_delta(controls)), readers=[researcher_id]
            )
        self.reply(researcher_id, self._reply(request, trained(params, self.step), extras))

    def _reply(self, request: TrainRequest, params: Params, extras: dict[str, str]) -> TrainReply:
        return TrainReply(
            request_id=request.request_id,
            experiment_id=request.experiment_id,
            round_index=request.round_index,
            params_blob=self.blobs.put_bytes(params_to_bytes(params), readers=["alice"]),
            sample_count=self.behaviour.sample_count,
            extra_blobs=extras,
        )


class HostileNode(FakeNode):
    """Answers every train request with what ``attack`` crafts."""

    def __init__(self, *args: Any, attack: Attack, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.attack = attack

    def _on_train(self, researcher_id: str, request: TrainRequest) -> None:
        params, controls = _request_params(self, request)
        crafted = self.attack(params, controls)
        extras = crafted.extras
        if extras is None:
            extras = (
                {}
                if controls is None
                else {SCAFFOLD_DELTA_CONTROL: params_to_bytes(control_delta(controls))}
            )
        extra_blobs = {
            name: self.blobs.put_bytes(data, readers=[researcher_id])
            for name, data in extras.items()
        }
        reply = TrainReply(
            request_id=request.request_id,
            experiment_id=request.experiment_id,
            round_index=request.round_index,
            params_blob=self.blobs.put_bytes(crafted.update, readers=[researcher_id]),
            sample_count=crafted.sample_count,
            extra_blobs=extra_blobs,
        )
        self.reply(researcher_id, reply)


def run_experiment(aggregator: str, attack: Attack | None) -> Experiment:
    """Two rounds with the honest nodes, and node2 answering with ``attack`` if given."""
    harness = Harness()
    try:
        for index, (node_id, samples) in enumerate(sorted(HONEST.items())):
            harness.nodes[node_id] = HonestNode(
                harness.broker,
                harness.blob_space,
                node_id,
                behaviour=NodeBehaviour(sample_count=samples),
                step=0.5 + index,
            )
        if attack is not None:
            harness.nodes[HOSTILE] = HostileNode(
                harness.broker, harness.blob_space, HOSTILE, attack=attack
            )
        experiment = harness.experiment(
            training_plan=MixedPlan,
            aggregator=AGGREGATORS[aggregator](),
            rounds=2,
            min_replies=len(HONEST),
        )
        experiment.run()
        return experiment
    finally:
        harness.close()


_reference: dict[str, Params] = {}


def honest_only(aggregator: str) -> Params:
    """The parameters the honest nodes alone give with ``aggregator``."""
    if aggregator not in _reference:
        _reference[aggregator] = run_experiment(aggregator, None).aggregated_params()
    return _reference[aggregator]


def assert_refused_without_influence(experiment: Experiment, aggregator: str, reason: str) -> None:
    assert len(experiment.history) == 2, "the experiment stopped"
    for record in experiment.history:
        assert record.succeeded == sorted(HONEST)
        hostile = record.nodes[HOSTILE]
        assert hostile.status == "failed"
        assert HOSTILE in hostile.error
        assert re_search(reason, hostile.error), hostile.error
    result = experiment.aggregated_params()
    for name, value in result.items():
        if value.dtype.kind == "f":
            assert np.all(np.isfinite(value)), name
    expected = honest_only(aggregator)
    assert result.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(result[name], expected[name], err_msg=name)
        assert result[name].dtype == expected[name].dtype


def re_search(pattern: str, text: str) -> bool:
    return re.search(pattern, text) is not None


# The checks sit in the round, before any aggregator sees an update: every attack runs
# against FedAvg, and one of each kind (values, header, layout, size, weight) against
# every other aggregator.
EVERY_AGGREGATOR = [
    "NaN in float32",
    "-inf in float16",
    "finite 3e38 (overflows the mean)",
    "int64 near 2**63",
    "shape 2**70",
    "extra tensor",
    "blob over the layout's size",
    "sample count 10**400",
]
MATRIX = [(case, "fedavg") for case in sorted(ATTACKS)] + [
    (case, aggregator)
    for aggregator in sorted(AGGREGATORS)
    if aggregator != "fedavg"
    for case in EVERY_AGGREGATOR
]


@pytest.mark.parametrize(("case", "aggregator"), MATRIX)
def test_hostile_update_is_refused_and_the_round_goes_on_with_the_honest_nodes(
    case: str, aggregator: str
) -> None:
    attack, reason = ATTACKS[case]
    experiment = run_experiment(aggregator, attack)
    assert_refused_without_influence(experiment, aggregator, reason)


@pytest.mark.parametrize("case", sorted(SCAFFOLD_ATTACKS))
def test_hostile_scaffold_control_delta_is_refused(case: str) -> None:
    attack, reason = SCAFFOLD_ATTACKS[case]
    experiment = run_experiment("scaffold", attack)
    assert_refused_without_influence(experiment, "scaffold", reason)
    aggregator = experiment.aggregator
    assert isinstance(aggregator, Scaffold)
    assert HOSTILE not in aggregator._controls.entries()
    for value in aggregator.control.values():
        assert np.all(np.isfinite(value))


def poisoned_buffer_claiming(count: int) -> Attack:
    """A plausible update whose buffer is far off, sent with ``count`` claimed samples."""

    def attack(params: Params, controls: Params | None) -> Crafted:
        update = trained(params, 1.0)
        update["buffer:count"] = np.full_like(update["buffer:count"], 10**15)
        return Crafted(params_to_bytes(update), sample_count=count)

    return attack


@pytest.mark.parametrize("aggregator", ["median", "trimmed_mean", "krum"])
def test_a_huge_sample_count_gives_no_node_more_say_under_a_robust_rule(aggregator: str) -> None:
    # 2**53 is the largest count a reply may claim; FedAvg weighs by it (that is its
    # definition), but a robust rule promises to treat the nodes alike, buffers included.
    modest = run_experiment(aggregator, poisoned_buffer_claiming(10)).aggregated_params()
    huge = run_experiment(aggregator, poisoned_buffer_claiming(2**53)).aggregated_params()
    for name in modest:
        np.testing.assert_array_equal(huge[name], modest[name], err_msg=name)
    if aggregator == "median":  # (trimmed mean: 0.2 of 4 nodes trims nothing; Krum may
        # pick node2 itself, whose trained weights lie amid the honest ones)
        assert huge["buffer:count"][0] < 10, huge["buffer:count"]


# --- through the real processes -------------------------------------------------------------


class ImpostorNode:
    """node3's broker password and upload token in an attacker's hands: a bare MQTT client
    and blob client, no node process. It offers a matching dataset, takes the global
    parameters like a node, and answers each train request with what ``attack`` crafts."""

    def __init__(self, fed: LocalFederation, node_id: str, tags: list[str]) -> None:
        assert fed.broker is not None
        self.node_id = node_id
        self.attack: Attack = claims_samples(1)
        # When set, what the impostor sends instead of its crafted TrainReply.
        self.answer_instead: Callable[[TrainReply], Message] | None = None
        self.errors: queue.Queue[BaseException] = queue.Queue()
        password = (fed.secrets_dir / f"{node_id}.broker-password").read_text().strip()
        token = (fed.secrets_dir / f"{node_id}.upload-token").read_text().strip()
        self.blobs = HttpBlobStore(fed.uploads_url, token, timeout_s=30)
        self.dataset = DatasetSummary(
            dataset_id="ds-stolen", name="bc", data_type="csv", tags=tags, sample_count=100
        )
        presence = topics.presence_topic(node_id)
        offline = encode_presence(NodePresence(state="offline", instance_id="impostor"))
        self.channel = MqttChannel(
            fed.broker.endpoint(node_id, password),
            client_id=f"impostor-{node_id}",
            will=Will(presence, offline, retain=True),
        )
        for topic_filter in topics.node_subscriptions(node_id):
            self.channel.subscribe(topic_filter, self._on_request)
        online = NodePresence(state="online", instance_id="impostor")
        self.channel.publish(presence, encode_presence(online), retain=True)

    def _on_request(self, topic: str, payload: bytes) -> None:
        try:
            researcher_id = topics.sender_of_request(topic, self.node_id)
            request = decode_request(payload)
            answer: Message
            if isinstance(request, TrainRequest):
                answer = self._train(researcher_id, request)
                if self.answer_instead is not None:
                    answer = self.answer_instead(answer)
            elif isinstance(request, (SearchRequest, ListRequest)):
                answer = DatasetsReply(request_id=request.request_id, datasets=[self.dataset])
            elif isinstance(request, PingRequest):
                answer = PongReply(request_id=request.request_id, version="impostor")
            else:
                return
            self.channel.publish(topics.reply_topic(researcher_id, self.node_id), encode(answer))
        except BaseException as exc:  # the test reports it; paho's thread would swallow it
            self.errors.put(exc)

    def _train(self, researcher_id: str, request: TrainRequest) -> TrainReply:
        params = params_from_bytes(self.blobs.get_bytes(request.params_blob))
        crafted = self.attack(params, None)
        return TrainReply(
            request_id=request.request_id,
            experiment_id=request.experiment_id,
            round_index=request.round_index,
            params_blob=self.blobs.put_bytes(crafted.update, readers=[researcher_id]),
            sample_count=crafted.sample_count,
        )

    def close(self) -> None:
        self.channel.close()
        self.blobs.close()


def every_float(value: float) -> Attack:
    """One value planted in every floating tensor, whatever the model."""

    def attack(params: Params, controls: Params | None) -> Crafted:
        update = {name: np.array(array, copy=True) for name, array in params.items()}
        for array in update.values():
            if array.dtype.kind == "f" and array.size:
                array.reshape(-1)[0] = value
        return Crafted(params_to_bytes(update))

    return attack


def first_renamed(params: Params, controls: Params | None) -> Crafted:
    first = sorted(params)[0]
    update = dict(params)
    update["renamed"] = update.pop(first)
    return Crafted(params_to_bytes(update))


REAL_TAGS = ["breast-cancer", "hostile"]
REAL_ATTACKS: dict[str, tuple[Attack, str]] = {
    "NaN": (every_float(np.nan), r"non-finite values"),
    "-inf": (every_float(-np.inf), r"non-finite values"),
    "shape 2**70": ATTACKS["shape 2**70"],
    "shape product 2**64": ATTACKS["shape product 2**64 (wraps to 0 in int64)"],
    "header size larger than the file": ATTACKS["header size larger than the file"],
    "wrong tensor name": (first_renamed, r"names differ: .*unexpected \['renamed'\]"),
    "blob over the layout's size": ATTACKS["blob over the layout's size"],
    "sample count 10**400": ATTACKS["sample count 10**400"],
}


@dataclass
class RealFederation:
    fed: LocalFederation
    impostor: ImpostorNode
    model_args: dict[str, Any]


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealFederation]:
    workdir = tmp_path_factory.mktemp("hostile")
    split = breast_cancer_split(workdir / "data", 2)
    with LocalFederation(workdir, node_ids=["node1", "node2", "node3"]) as fed:
        for node_id, path in zip(["node1", "node2"], split.node_files, strict=True):
            fed.add_dataset(node_id, data_type="csv", path=path, name="bc", tags=REAL_TAGS)
            fed.start_node(node_id)
        impostor = ImpostorNode(fed, "node3", REAL_TAGS)
        try:
            fed.wait_online(["node1", "node2", "node3"])
            model_args = {"n_features": len(split.feature_names), "classes": split.classes}
            yield RealFederation(fed, impostor, model_args)
        finally:
            impostor.close()


def real_experiment(
    real: RealFederation,
    state_dir: Path,
    *,
    round_timeout_s: float = 60,
    progress: bool | io.StringIO = False,
) -> Experiment:
    """One round of the demo plan on the real federation, node3 being the impostor."""
    return Experiment(
        tags=REAL_TAGS,
        training_plan=SGDClassifierPlan,
        model_args=real.model_args,
        training_args=demo_training_args(),
        rounds=1,
        min_replies=2,
        round_timeout_s=round_timeout_s,
        federation=real.fed.researcher(),
        state_dir=state_dir,
        progress=progress,
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", sorted(REAL_ATTACKS))
def test_real_federation_drops_the_hostile_node_and_trains_with_the_others(
    real: RealFederation, case: str, tmp_path: Path
) -> None:
    attack, reason = REAL_ATTACKS[case]
    real.impostor.attack = attack
    experiment = real_experiment(real, tmp_path)
    history = experiment.run()

    assert real.impostor.errors.empty(), real.impostor.errors.get()
    (record,) = history
    assert record.succeeded == ["node1", "node2"]
    hostile = record.nodes["node3"]
    assert hostile.status == "failed"
    assert "node3" in hostile.error
    assert re_search(reason, hostile.error), hostile.error
    for name, value in experiment.aggregated_params().items():
        if value.dtype.kind == "f":
            assert np.all(np.isfinite(value)), name
    # The checkpoint's history names the node and the reason too.
    assert "node3" in ((experiment.last_checkpoint or tmp_path) / "state.json").read_text()
    # The federation keeps serving: every node, the impostor included, still answers.
    assert set(real.fed.researcher().ping(timeout_s=5)) == {"node1", "node2", "node3"}


FORGED_RECORD = "2026-01-01 00:00:00,000 WARNING fedward.researcher: round 1: node node1 failed"
TERMINAL_ANSWERS: dict[str, Callable[[TrainReply], Message]] = {
    # A forged progress line, an OSC 52 clipboard write and hidden text, as metric names.
    "escapes in metric names": lambda reply: msgspec.structs.replace(
        reply,
        metrics={"global_\x1b[2K\x1b[1Around 1/1 done\x1b]52;c;Y3VybA==\x07": 0.5},
    ),
    "escapes in an error": lambda reply: ErrorReply(
        request_id=reply.request_id, code="oom", message="out of memory\x1b[8m"
    ),
    "a forged log record in an error": lambda reply: ErrorReply(
        request_id=reply.request_id, code="oom", message=f"out of memory\n{FORGED_RECORD}"
    ),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", sorted(TERMINAL_ANSWERS))
def test_a_node_s_words_cannot_drive_the_researcher_s_terminal_or_log(
    real: RealFederation, case: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    real.impostor.answer_instead = TERMINAL_ANSWERS[case]
    progress = io.StringIO()
    try:
        # A refused reply is no reply: the round waits round_timeout_s for it.
        experiment = real_experiment(real, tmp_path, round_timeout_s=8, progress=progress)
        with caplog.at_level(logging.INFO):
            (record,) = experiment.run()
    finally:
        real.impostor.answer_instead = None

    assert real.impostor.errors.empty(), real.impostor.errors.get()
    assert record.succeeded == ["node1", "node2"]
    assert record.nodes["node3"].status != "succeeded"
    state = ((experiment.last_checkpoint or tmp_path) / "state.json").read_text()
    for shown in (caplog.text, progress.getvalue(), state, str(record.metrics)):
        assert "\x1b" not in shown and "\\u001b" not in shown and "\x07" not in shown
    for line in caplog.text.splitlines():  # the node's line breaks come indented
        assert not line.startswith(FORGED_RECORD), line
