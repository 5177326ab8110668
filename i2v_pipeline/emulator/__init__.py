"""A faithful local AKOOL: the embedded default, the test fixture, the benchmark target."""

from .app import Emulator, RequestRecord
from .config import EmulatorConfig, Faults
from .state import Clock, ManualClock

__all__ = ["Clock", "Emulator", "EmulatorConfig", "Faults", "ManualClock", "RequestRecord"]
