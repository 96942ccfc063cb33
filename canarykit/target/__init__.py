"""The rehearsal target: an HTTP service with health, metrics and injectable faults."""

from canarykit.target.app import build_app
from canarykit.target.cli import add_target_arguments, run_target, serve
from canarykit.target.config import TargetConfig

__all__ = ["TargetConfig", "add_target_arguments", "build_app", "run_target", "serve"]
