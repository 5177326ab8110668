"""i2v: reproducible image-to-video renders on AKOOL from version-controlled YAML manifests."""

from importlib.metadata import PackageNotFoundError, version

from .errors import I2VError
from .model import Action, JobSpec, LockEntry, PlanItem
from .spec.campaign import Campaign, compile_manifest, load_campaign
from .state.plan import make_plan

try:
    __version__ = version("i2v-pipeline")  # one source: pyproject.toml's [project] version
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

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
