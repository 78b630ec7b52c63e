"""One round under secure aggregation: train, share keys, collect masked sums, unmask.

The researcher runs the server side of SecAgg (``fedward.privacy``) over the usual
request/reply path; every step is a request per node with its own deadline:

1. ``TrainRequest`` with the round's ``SecAggSetup`` (cohort, threshold): nodes train,
   keep the update, publish keys on their advert topics and answer ``SecAggReadyReply``.
   Who answered is U1.
2. ``SecAggShareRequest(U1)``: each node seals Shamir shares for the others, using the
   keys it read from the other nodes' advert topics. Who sent shares is U2.
3. ``SecAggMaskRequest``: the shares sealed for each node, relayed unread. Each node
   uploads its masked vector (readable by this researcher only); each is added to one
   running sum as it arrives (O(model) memory). Whose vector arrived is U3.
4. ``SecAggUnmaskRequest(U3)``: with the answers of at least ``t`` nodes the sum is
   unmasked, decoded and handed to the aggregator as the round's one update, weighted
   by the total weight.

A node that drops out at any step after the first is named in the round's history with
the step it missed; below the threshold the round fails (``FederationError``) and the
sum stays masked. No single node's update is ever seen unmasked here.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import msgspec

from fedward.core.aggregation import Layout, check_layout, layout_of
from fedward.core.messages import (
    ErrorReply,
    Message,
    SecAggMaskedReply,
    SecAggMaskRequest,
    SecAggReadyReply,
    SecAggShareRequest,
    SecAggSharesReply,
    SecAggUnmaskReply,
    SecAggUnmaskRequest,
)
from fedward.core.params import Params
from fedward.errors import FederationError, IntegrityError, NotFound, ValidationError
from fedward.privacy.secagg_keys import SessionContext
from fedward.privacy.secagg_participant import Advert, Reveal
from fedward.privacy.secagg_unmasking import SecAggUnmasking
from fedward.privacy.update_vector import (
    MASKED_TENSOR,
    decode_mean,
    masked_layout,
    vector_size,
)
from fedward.protocol.params_wire import open_params, params_file_bound, params_to_bytes
from fedward.researcher.aggregators.base import Aggregator
from fedward.researcher.federation import Federation
from fedward.researcher.history import NodeRound, NodeStatus
from fedward.researcher.monitor import RoundObserver
from fedward.researcher.privacy_settings import SecAgg
from fedward.researcher.rounds import RequestBuilder

log = logging.getLogger("fedward.researcher")

#: The aggregate's name when it reaches the aggregator: no single node's update.
AGGREGATE = "secure-aggregate"

R = TypeVar("R", bound=Message)


class SecureRoundRunner:
    """Same contract as ``RoundRunner.run``; the aggregator gets one ``add``: the mean."""

    def __init__(
        self,
        federation: Federation,
        aggregator: Aggregator,
        observer: RoundObserver,
        deadline_s: float,
        settings: SecAgg,
    ) -> None:
        if not aggregator.works_on_mean:
            raise ValidationError(
                f"the {aggregator.name} aggregator needs each node's update, which secure "
                "aggregation never reveals",
                hint="use FedAvg, FedProx, FedAdam, FedYogi or FedAdagrad with secure aggregation",
            )
        self.federation = federation
        self.aggregator = aggregator
        self.observer = observer
        self.deadline_s = deadline_s
        self.settings = settings
        #: The last round's quantisation bound on the mean (absolute, per coordinate).
        self.last_error_bound = 0.0

    def run(
        self,
        experiment_id: str,
        round_index: int,
        selected: Sequence[str],
        global_params: Params,
        build_request: RequestBuilder,
    ) -> dict[str, NodeRound]:
        started = time.monotonic()
        setup = self.settings.setup(list(selected))
        context = SessionContext(
            self.federation.researcher_id,
            experiment_id,
            round_index,
            tuple(setup.cohort),
            setup.threshold,
            setup.fraction_bits,
        )
        step = _Steps(self, experiment_id, round_index, started)
        params_blob = self.federation.blobs.put_bytes(
            params_to_bytes(global_params), readers=list(selected)
        )
        requests = {
            node_id: msgspec.structs.replace(
                build_request(node_id, params_blob), secure_aggregation=setup
            )
            for node_id in selected
        }
        for node_id in selected:
            self.observer.node_changed(round_index, node_id, "training")
        ready = step.ask(requests, SecAggReadyReply, self.deadline_s, "training", "keys")
        step.need(ready, setup.threshold, "finished training")
        adverts = {
            n: Advert(n, r.channel_public, r.mask_public, r.self_mask_commitment)
            for n, r in ready.items()
        }
        members = sorted(ready)
        shares = step.ask(
            {
                n: SecAggShareRequest(
                    request_id=self.federation.new_request_id(),
                    experiment_id=experiment_id,
                    round_index=round_index,
                    members=members,
                )
                for n in members
            },
            SecAggSharesReply,
            self.settings.step_timeout_s,
            "sharing keys",
            "shares",
        )
        for sender, reply in list(shares.items()):
            if set(reply.sealed) != set(members):
                step.fail(sender, "sent shares for another set of nodes", "protocol")
                del shares[sender]
        step.need(shares, setup.threshold, "shared their keys")
        senders = sorted(shares)
        layout = layout_of(global_params)
        unmasking = SecAggUnmasking(context, adverts, senders, vector_size(layout))
        mask_requests = {
            n: SecAggMaskRequest(
                request_id=self.federation.new_request_id(),
                experiment_id=experiment_id,
                round_index=round_index,
                sealed={s: shares[s].sealed[n] for s in senders},
            )
            for n in senders
        }
        with tempfile.TemporaryDirectory(prefix="fedward-secagg-") as scratch:
            step.fold = lambda node_id, reply: self._fold(
                unmasking, node_id, reply, layout, Path(scratch)
            )
            masked = step.ask(
                mask_requests,
                SecAggMaskedReply,
                self.settings.step_timeout_s,
                "sending its masked update",
                "masked",
            )
        survivors = unmasking.survivors
        step.need(masked, setup.threshold, "sent their masked update")
        reveals = step.ask(
            {
                n: SecAggUnmaskRequest(
                    request_id=self.federation.new_request_id(),
                    experiment_id=experiment_id,
                    round_index=round_index,
                    survivors=survivors,
                )
                for n in survivors
            },
            SecAggUnmaskReply,
            self.settings.step_timeout_s,
            "unmasking",
            "unmasked",
            drop=False,
        )
        total = unmasking.unmask(
            {
                n: Reveal(dict(r.self_mask_shares), dict(r.mask_key_shares))
                for n, r in reveals.items()
            }
        )
        mean, total_weight = decode_mean(total, layout, setup.fraction_bits)
        self.last_error_bound = len(survivors) * 2.0 ** -(setup.fraction_bits + 1) / total_weight
        log.info(
            "round %d: secure sum of %d update(s), total weight %d, quantisation error <= %.2g",
            round_index,
            len(survivors),
            total_weight,
            self.last_error_bound,
        )
        self.aggregator.add(AGGREGATE, mean, float(total_weight), layout)
        results = step.results
        elapsed = time.monotonic() - started
        for node_id in survivors:
            trained = ready[node_id]
            # A node's weight stays masked: each counts 1 in the means of its metrics.
            results[node_id] = NodeRound(
                node_id,
                "ok",
                sample_count=1,
                metrics=dict(trained.metrics),
                timings=dict(trained.timings),
                duration_s=elapsed,
            )
            self.observer.node_changed(round_index, node_id, "ok")
        return results

    def _fold(
        self,
        unmasking: SecAggUnmasking,
        node_id: str,
        reply: SecAggMaskedReply,
        layout: Layout,
        scratch: Path,
    ) -> None:
        expected = masked_layout(layout)
        path = scratch / f"{node_id}.safetensors"
        try:
            self.federation.blobs.get_file(
                reply.masked_blob, path, max_bytes=params_file_bound(expected)
            )
            with open_params(path) as masked:
                check_layout(expected, masked.layout, "masked update")
                unmasking.add_masked(node_id, masked[MASKED_TENSOR])
        finally:
            path.unlink(missing_ok=True)


class _Steps:
    """The bookkeeping of one round's steps: who answered, who dropped out where."""

    def __init__(
        self, runner: SecureRoundRunner, experiment_id: str, round_index: int, started: float
    ) -> None:
        self.runner = runner
        self.experiment_id = experiment_id
        self.round_index = round_index
        self.started = started
        self.results: dict[str, NodeRound] = {}
        self.fold: Callable[[str, SecAggMaskedReply], None] | None = None

    def fail(self, node_id: str, error: str, code: str, status: NodeStatus = "failed") -> None:
        log.warning("round %d: node %s %s", self.round_index, node_id, error)
        self.results[node_id] = NodeRound(
            node_id,
            status,
            error=error,
            error_code=code,
            duration_s=time.monotonic() - self.started,
        )
        self.runner.observer.node_changed(self.round_index, node_id, status)

    def ask(
        self,
        requests: Mapping[str, Message],
        expected: type[R],
        timeout_s: float,
        doing: str,
        done: str,
        *,
        drop: bool = True,
    ) -> dict[str, R]:
        """The replies of type ``expected``; with ``drop``, the others are named failed or
        late in the results (in the unmasking step a silent node's update still counts)."""
        got: dict[str, R] = {}
        for answer in self.runner.federation.ask(dict(requests), timeout_s):
            node_id, reply = answer.node_id, answer.reply
            if isinstance(reply, ErrorReply):
                if drop:
                    self.fail(node_id, f"failed while {doing}: {reply.message}", reply.code)
                else:
                    log.warning(
                        "round %d: %s could not unmask: %s",
                        self.round_index,
                        node_id,
                        reply.message,
                    )
                continue
            if (
                not isinstance(reply, expected)
                or getattr(reply, "experiment_id", None) != self.experiment_id
                or getattr(reply, "round_index", None) != self.round_index
            ):
                if drop:
                    self.fail(node_id, f"sent an unexpected reply while {doing}", "protocol")
                continue
            if self.fold is not None and isinstance(reply, SecAggMaskedReply):
                try:
                    self.fold(node_id, reply)
                except (NotFound, IntegrityError, ValidationError) as exc:
                    self.fail(node_id, f"sent a masked update that was refused: {exc}", exc.code)
                    continue
            got[node_id] = reply
            self.runner.observer.node_changed(self.round_index, node_id, done)
        if drop:
            for node_id in sorted(set(requests) - set(got) - set(self.results)):
                after = "" if doing == "training" else " (dropped out after the key exchange)"
                self.fail(
                    node_id,
                    f"no answer while {doing} within {timeout_s:g} s{after}",
                    "timeout",
                    status="late",
                )
        return got

    def need(self, answered: Mapping[str, object], threshold: int, what: str) -> None:
        if len(answered) >= threshold:
            return
        details = "; ".join(f"{n}: {r.error}" for n, r in sorted(self.results.items()))
        raise FederationError(
            f"round {self.round_index}: only {len(answered)} node(s) {what}, fewer than the "
            f"secure-aggregation threshold of {threshold}; nothing is revealed"
            + (f" ({details})" if details else "")
        )
