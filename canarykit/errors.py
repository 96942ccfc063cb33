"""Errors raised by canarykit; only the CLI turns them into exit codes.

CanaryKitError
 +-- InvalidInputError (ValueError)       bad file, option or parameter
 |    +-- InvalidK6OutputError            a file that is not k6 JSON or CSV output
 +-- PreflightError (RuntimeError)        the target failed a pre-flight check
 +-- K6RunError (RuntimeError)            the k6 process could not start or crashed
 +-- NotebookExecutionError (RuntimeError)
 +-- BundleIntegrityError (ValueError)    a bundle file differs from its manifest
"""

from __future__ import annotations


class CanaryKitError(Exception):
    """Base class of every error canarykit raises on purpose."""


class InvalidInputError(CanaryKitError, ValueError):
    """An input file, option or parameter is not what canarykit expects."""


class InvalidK6OutputError(InvalidInputError):
    """A file passed as k6 output is not k6's JSON (NDJSON) or CSV output."""


class PreflightError(CanaryKitError, RuntimeError):
    """The service under test failed a pre-flight check, so no load was sent."""


class K6RunError(CanaryKitError, RuntimeError):
    """The k6 process could not be started or ended without producing output."""


class NotebookExecutionError(CanaryKitError, RuntimeError):
    """A notebook cell raised while papermill executed the notebook."""


class BundleIntegrityError(CanaryKitError, ValueError):
    """A file listed in a bundle manifest is missing or its hash differs."""
