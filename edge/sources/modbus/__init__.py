"""The Modbus source: devices polled over TCP and RS-485 (RTU), local alarms, safety outputs.

Public surface: :class:`ModbusSource` and :func:`build_sources` (:mod:`edge.sources.modbus.poller`),
the ``[modbus]`` config (:func:`parse_config` and its types, :mod:`edge.sources.modbus.config`),
and the safety outputs (:class:`SafetyOutputs`, :mod:`edge.sources.modbus.safety`).
"""

from edge.sources.modbus.config import (
    BusConfig,
    DeviceConfig,
    ModbusConfig,
    SafetyAction,
    parse_config,
)
from edge.sources.modbus.poller import ModbusSource, build_sources, stagger
from edge.sources.modbus.safety import OutputState, SafetyOutputs

__all__ = [
    "BusConfig",
    "DeviceConfig",
    "ModbusConfig",
    "ModbusSource",
    "OutputState",
    "SafetyAction",
    "SafetyOutputs",
    "build_sources",
    "parse_config",
    "stagger",
]
