"""The whole topology on one machine, in network namespaces (Linux, root): ``fedward lab``.

- ``topology``  names and addresses of the namespaces, interfaces and bridge ports
- ``state``     the record of what was created, so ``down`` undoes even a failed ``up``
- ``netns``     namespaces and the processes in them (``ip netns``)
- ``deploy``    ``lab_up`` / ``lab_down``
- ``cli``       ``fedward lab up | run | down | status``
"""
