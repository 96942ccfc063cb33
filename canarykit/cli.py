"""The `canarykit` command: parse options, call the library, map exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from canarykit import __version__
from canarykit.errors import CanaryKitError, InvalidInputError, PreflightError
from canarykit.progress import ProgressPrinter

logger = logging.getLogger("canarykit")

EXIT_PASS = 0
EXIT_NOT_PASSED = 1
EXIT_INVALID = 2

# Names of exceptions that mean the input, not the service, was at fault.
INVALID_INPUT_ERRORS = frozenset({"InvalidK6OutputError", "InvalidInputError"})


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose, args.quiet)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (InvalidInputError, PreflightError) as error:
        print(f"canarykit: error: {error}", file=sys.stderr)
        return EXIT_INVALID
    except CanaryKitError as error:
        print(f"canarykit: error: {error}", file=sys.stderr)
        return EXIT_NOT_PASSED
    except KeyboardInterrupt:
        print(
            "canarykit: interrupted; the run folder keeps what was written",
            file=sys.stderr,
        )
        return 130


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="canarykit",
        description="Run a k6 load canary, analyze its output and render the evidence.",
        epilog="Exit codes: 0 PASS; 1 FAIL, INCONCLUSIVE or ERROR; 2 invalid input, "
        "usage or a failed pre-flight check.",
    )
    parser.add_argument(
        "--version", action="version", version=f"canarykit {__version__}"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(commands)
    _add_analyze(commands)
    _add_summary(commands)
    _add_demo(commands)
    _add_target(commands)
    _add_verify(commands)
    return parser


def _add_load_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--rate",
        type=_positive_int,
        default=250,
        help="requests per second (default 250)",
    )
    command.add_argument(
        "--duration", default="30m", help="k6 duration such as 30m or 90s (default 30m)"
    )
    command.add_argument(
        "--pre-allocated-vus",
        type=_positive_int,
        default=50,
        help="k6 VUs made at start (default 50)",
    )
    command.add_argument(
        "--max-vus",
        type=_positive_int,
        default=100,
        help="k6 VUs at most (default 100)",
    )


def _add_output_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--app",
        default="auto_com_center",
        help="application name (default auto_com_center)",
    )
    command.add_argument(
        "--evidence-dir",
        type=Path,
        default=Path("docs/evidence"),
        help="root of the rendered bundles (default docs/evidence)",
    )
    command.add_argument(
        "--kernel",
        default="python3",
        help="Jupyter kernel that executes the notebooks (default python3)",
    )


def _add_run(commands: Any) -> None:
    command = commands.add_parser(
        "run", help="pre-flight, k6 canary, analysis and evidence bundle"
    )
    command.add_argument(
        "--base-url",
        required=True,
        type=_http_url,
        help="URL of the service under test, such as http://127.0.0.1:8000",
    )
    _add_load_options(command)
    _add_output_options(command)
    command.add_argument(
        "--token-env",
        default="TEST_TOKEN",
        help="environment variable holding the bearer token (default TEST_TOKEN)",
    )
    command.add_argument(
        "--logs",
        action="append",
        default=[],
        metavar="GLOB",
        help="log file or glob to follow during the run; repeatable",
    )
    command.add_argument(
        "--sample-interval",
        type=_positive_float,
        default=5.0,
        help="seconds between /metrics and /health scrapes (default 5)",
    )
    command.add_argument(
        "--gzip",
        action="store_true",
        help="write k6's output gzip-compressed (k6.json.gz)",
    )
    command.add_argument(
        "--results-dir",
        type=Path,
        default=Path("results"),
        help="root of the run folders (default results)",
    )
    command.add_argument(
        "--script",
        type=Path,
        default=None,
        help="k6 script (default load-tests/canary_250rps_30min.js)",
    )
    command.set_defaults(handler=_run)


def _add_analyze(commands: Any) -> None:
    command = commands.add_parser(
        "analyze", help="analyze an existing k6 output file and render the bundle"
    )
    command.add_argument(
        "k6_json",
        type=Path,
        metavar="K6_JSON",
        help="k6 JSON output, plain or gzip, or k6 CSV output",
    )
    _add_output_options(command)
    command.add_argument(
        "--rate",
        type=_positive_float,
        default=None,
        help="target request rate per second, for the load check",
    )
    command.add_argument(
        "--duration",
        default=None,
        help="planned duration, k6 syntax, for the expected request count",
    )
    command.add_argument(
        "--json",
        action="store_true",
        help="print the verdict as JSON on standard output",
    )
    command.set_defaults(handler=_analyze)


def _add_summary(commands: Any) -> None:
    command = commands.add_parser(
        "summary", help="print k6's end-of-test numbers from a k6 output file"
    )
    command.add_argument(
        "k6_json",
        type=Path,
        metavar="K6_JSON",
        help="k6 JSON output, plain or gzip, or k6 CSV output",
    )
    command.add_argument(
        "--json",
        action="store_true",
        help="print in the shape of k6's --summary-export",
    )
    command.set_defaults(handler=_summary)


def _add_demo(commands: Any) -> None:
    command = commands.add_parser(
        "demo", help="run a canary against the rehearsal target on loopback"
    )
    command.add_argument(
        "--rate",
        type=_positive_int,
        default=250,
        help="requests per second (default 250)",
    )
    command.add_argument("--duration", default="60s", help="k6 duration (default 60s)")
    _add_output_options(command)
    command.add_argument(
        "--results-dir",
        type=Path,
        default=Path("results"),
        help="root of the run folders (default results)",
    )
    command.set_defaults(handler=_demo)


def _add_target(commands: Any) -> None:
    from canarykit.target import add_target_arguments

    command = commands.add_parser("target", help="serve the rehearsal target")
    add_target_arguments(command)
    command.set_defaults(handler=_target)


def _add_verify(commands: Any) -> None:
    command = commands.add_parser(
        "verify", help="recompute the SHA-256 of every file a bundle lists"
    )
    command.add_argument(
        "bundle",
        type=Path,
        metavar="BUNDLE_DIR",
        help="bundle folder, or its HTML or Markdown report",
    )
    command.add_argument(
        "--k6-output",
        type=Path,
        default=None,
        help="k6 output file to check when it is not at the path the manifest records",
    )
    command.set_defaults(handler=_verify)


def _run(args: argparse.Namespace) -> int:
    from canarykit.k6runner import LoadSettings
    from canarykit.paths import parse_duration_s
    from canarykit.pipeline import RunSettings, run_canary

    parse_duration_s(args.duration)
    if args.pre_allocated_vus > args.max_vus:
        raise InvalidInputError(
            f"--pre-allocated-vus {args.pre_allocated_vus} is above --max-vus "
            f"{args.max_vus}; k6 requires pre-allocated VUs at most the maximum"
        )

    settings = RunSettings(
        load=LoadSettings(
            base_url=args.base_url.rstrip("/"),
            rate_per_s=args.rate,
            duration=args.duration,
            pre_allocated_vus=args.pre_allocated_vus,
            max_vus=args.max_vus,
        ),
        app=args.app,
        token_env=args.token_env,
        log_patterns=tuple(args.logs),
        sample_interval_s=args.sample_interval,
        gzip_output=args.gzip,
        kernel_name=args.kernel,
        results_root=args.results_dir,
        evidence_root=args.evidence_dir,
        script=args.script,
    )
    outcome = run_canary(settings, echo=sys.stderr)
    return _report_analysis(outcome.analysis, as_json=False, run_dir=outcome.run_dir)


def _analyze(args: argparse.Namespace) -> int:
    from canarykit.paths import parse_duration_s
    from canarykit.pipeline import analyze_file

    _require_file(args.k6_json)
    result = analyze_file(
        args.k6_json,
        app=args.app,
        evidence_root=args.evidence_dir,
        kernel_name=args.kernel,
        target_rate_per_s=args.rate,
        duration_s=parse_duration_s(args.duration) if args.duration else None,
    )
    return _report_analysis(result, as_json=args.json, run_dir=None)


def _summary(args: argparse.Namespace) -> int:
    from canarykit.k6reader import read_k6_output
    from canarykit.stats import format_summary, summarize

    _require_file(args.k6_json)
    with ProgressPrinter(f"reading {args.k6_json}") as progress:
        output = read_k6_output(args.k6_json, progress=progress)
    summary = summarize(output)
    if args.json:
        print(json.dumps(summary, indent=2, allow_nan=False))
    else:
        print(format_summary(summary))
    return EXIT_PASS


def _demo(args: argparse.Namespace) -> int:
    from canarykit.pipeline import run_demo

    outcome = run_demo(
        duration=args.duration,
        rate_per_s=args.rate,
        app=args.app,
        results_root=args.results_dir,
        evidence_root=args.evidence_dir,
        kernel_name=args.kernel,
        echo=sys.stderr,
    )
    return _report_analysis(outcome.analysis, as_json=False, run_dir=outcome.run_dir)


def _target(args: argparse.Namespace) -> int:
    from canarykit.target import serve

    return serve(args)


def _verify(args: argparse.Namespace) -> int:
    from canarykit.bundle import verify_bundle

    if not args.bundle.exists():
        raise InvalidInputError(f"bundle not found: {args.bundle}")
    problems = verify_bundle(args.bundle, k6_output=args.k6_output)
    if not problems:
        print(f"OK: every file listed in the manifest of {args.bundle} matches")
        return EXIT_PASS
    for problem in problems:
        print(f"MISMATCH: {problem}")
    return EXIT_NOT_PASSED


def _report_analysis(result: Any, *, as_json: bool, run_dir: Path | None) -> int:
    if as_json:
        print(json.dumps(result.verdict, indent=2, allow_nan=False))
    else:
        _print_verdict_lines(result, run_dir)
    if _is_invalid_input(result):
        print(
            f"canarykit: error: {result.failure.evalue} (the ERROR bundle is at "
            f"{result.bundle_dir})",
            file=sys.stderr,
        )
        return EXIT_INVALID
    return EXIT_PASS if result.status == "PASS" else EXIT_NOT_PASSED


def _is_invalid_input(result: Any) -> bool:
    # The analysis notebook reads the k6 file, so a bad line deep in the file
    # surfaces as a failed cell. That is still invalid input, not a verdict.
    failure = getattr(result, "failure", None)
    return failure is not None and failure.ename in INVALID_INPUT_ERRORS


def _print_verdict_lines(result: Any, run_dir: Path | None) -> None:
    print(f"verdict: {result.status}")
    reason = result.verdict.get("status_reason")
    if reason:
        print(f"  because {reason}")
    for note in result.verdict.get("notes", []):
        print(f"  note: {note}")
    for criterion in result.verdict.get("criteria", []):
        print(
            f"  {criterion['status']:<12} {criterion['id']:<16} {criterion['reason']}"
        )
    if run_dir is not None:
        print(f"run folder: {run_dir}")
    print(f"report (HTML): {result.html_path}")
    print(f"report (Markdown): {result.md_path}")
    print(f"bundle: {result.bundle_dir}")


def _require_file(path: Path) -> None:
    if not path.exists():
        raise InvalidInputError(f"k6 output file not found: {path}")
    if not path.is_file():
        raise InvalidInputError(f"expected a k6 output file, found a directory: {path}")


def _http_url(text: str) -> str:
    parsed = urlsplit(text)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise argparse.ArgumentTypeError(
            f"expected an http:// or https:// URL with a host, found {text!r}"
        )
    return text.rstrip("/")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number, found {text!r}"
        ) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, found {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, found {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, found {value}")
    return value


def _configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.INFO
    if verbose:
        level = logging.DEBUG
    elif quiet:
        level = logging.WARNING
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # papermill, kaleido and choreographer log every step at INFO; canarykit's own
    # INFO lines already name each step.
    for chatty in ("papermill", "kaleido", "choreographer", "httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(
            logging.DEBUG if verbose else logging.WARNING
        )


if __name__ == "__main__":
    raise SystemExit(main())
