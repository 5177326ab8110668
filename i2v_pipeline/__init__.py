"""i2v: reproducible image-to-video renders on AKOOL from version-controlled YAML manifests."""

from .campaign import Campaign, compile_manifest, load_campaign
from .errors import I2VError
from .model import Action, JobSpec, LockEntry, PlanItem
from .plan import make_plan

__version__ = "0.1.0"

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
