"""Faults: what each timeline step does to a host. One module per family, each fault registered
once (`registry.fault`) with what it does to TCP; they act through the backend's controls."""

from orchestrator.faults import middlebox, network, power, process
from orchestrator.faults.registry import FAULTS, Fault, FaultContext, apply_step, needs_net_admin

__all__ = [
    "FAULTS",
    "Fault",
    "FaultContext",
    "apply_step",
    "middlebox",
    "needs_net_admin",
    "network",
    "power",
    "process",
]
