"""i2v: reproducible image-to-video renders on AKOOL from version-controlled YAML manifests.

The public names load on first use (PEP 562): importing the package must cost nothing, because
the `i2v` command imports it before its own guard against Ctrl-C during start-up can run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import I2VError
    from .model import Action, JobSpec, LockEntry, PlanItem
    from .spec.campaign import Campaign, compile_manifest, load_campaign
    from .state.plan import make_plan

    __version__: str

_HOMES = {
    "I2VError": ".errors",
    "Action": ".model",
    "JobSpec": ".model",
    "LockEntry": ".model",
    "PlanItem": ".model",
    "Campaign": ".spec.campaign",
    "compile_manifest": ".spec.campaign",
    "load_campaign": ".spec.campaign",
    "make_plan": ".state.plan",
}

__all__ = [
    "Action",
    "Campaign",
    "I2VError",
    "JobSpec",
    "LockEntry",
    "PlanItem",
    "__version__",
    "compile_manifest",
    "load_campaign",
    "make_plan",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value: Any = version("i2v-pipeline")  # one source: pyproject.toml's version
        except PackageNotFoundError:  # a source tree that was never installed
            value = "0+unknown"
    elif name in _HOMES:
        value = getattr(importlib.import_module(_HOMES[name], __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # once: later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
