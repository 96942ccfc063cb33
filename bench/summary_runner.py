"""Print canarykit's summary of one k6 output file as JSON, the way the CLI computes it.

Usage: python bench/summary_runner.py FILE
"""

from __future__ import annotations

import json
import sys

from canarykit.k6reader import read_k6_output
from canarykit.stats import summarize


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: summary_runner.py FILE\n")
        return 2
    summary = summarize(read_k6_output(argv[0]))
    sys.stdout.write(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
