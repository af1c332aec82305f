"""On-device cost of a candidate: latency and peak memory, measured on the target device.

* :mod:`lts.cost.device`   -- ``DeviceRecord`` / ``detect_device``: what the figures were measured on
* :mod:`lts.cost.protocol` -- ``Protocol``: input shape, backend, threads, stopping rule; ``key``
* :mod:`lts.cost.measure`  -- ``Measurer`` (isolated worker process), ``Measurement``, ``measure``
* :mod:`lts.cost.worker`   -- the worker process itself (how memory and latency are taken)
"""

from lts.cost.device import DeviceRecord, detect_device
from lts.cost.measure import Measurement, Measurer, measure
from lts.cost.protocol import Protocol

__all__ = ["DeviceRecord", "Measurement", "Measurer", "Protocol", "detect_device", "measure"]
