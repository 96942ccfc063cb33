"""Run the rehearsal target: ``python -m canarykit.target [options]``."""

from canarykit.target.cli import run_target

if __name__ == "__main__":
    raise SystemExit(run_target())
