"""Privacy: the mathematics and cryptography of private federated training, without I/O.

Nothing here talks to a broker or a disk; the node daemon (``fedward.node.secure_training``)
and the researcher (``fedward.researcher.secure_rounds``) drive these objects.

- ``ring``               fixed-point encoding of updates in Z/2^64, its range and its error
- ``shamir``             Shamir secret sharing over the prime field GF(2^521 - 1)
- ``masks``              AES-256-CTR keystreams as additive masks in the ring
- ``secagg_keys``        per-round X25519 keys, HKDF derivations, sealed shares
- ``secagg_participant`` one node's side of secure aggregation (SecAgg, Bonawitz et al. 2017)
- ``secagg_unmasking``   the researcher's side: the sum of the masked vectors, unmasked
- ``noise``              central DP: clip an update's change to a norm, add Gaussian noise
- ``accounting``         epsilon from (noise multiplier, sampling rate, steps, delta)

See ``docs/privacy.md`` for the protocol, the threat model and what is not protected.
"""
