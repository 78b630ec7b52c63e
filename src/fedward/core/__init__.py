"""Pure domain of fedward: no I/O, no network, numpy and msgspec only.

- ``ids``          identifier rules (node, researcher, experiment, request, dataset ids)
- ``params``       model parameters as ``name -> ndarray``
- ``messages``     typed control messages (requests, replies, events)
- ``plan_digest``  digest of a training plan's normalised source
- ``aggregation``  streaming weighted averaging (FedAvg math)
"""
