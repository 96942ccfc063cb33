"""canarykit: run a k6 load canary, analyze its output and render an evidence bundle."""

__version__ = "0.1.0"
