"""A faithful local AKOOL: the embedded default, the test fixture, the benchmark target."""

from .account import Clock, ManualClock
from .app import Emulator, RequestRecord
from .config import EmulatorConfig, Faults

__all__ = ["Clock", "Emulator", "EmulatorConfig", "Faults", "ManualClock", "RequestRecord"]
