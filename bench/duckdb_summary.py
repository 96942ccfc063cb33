"""Print per-metric statistics of one k6 JSON output file computed by DuckDB, as JSON.

The figures match canarykit's trend stats: count, avg, min, max, median and
p(90)/p(95)/p(99) by `quantile_cont` (linear interpolation between closest ranks).
Usage: python bench/duckdb_summary.py FILE
"""

from __future__ import annotations

import json
import sys

import duckdb

QUERY = """
SELECT metric,
       count(value) AS count, avg(value) AS avg, min(value) AS min, max(value) AS max,
       median(value) AS med,
       quantile_cont(value, 0.90) AS "p(90)",
       quantile_cont(value, 0.95) AS "p(95)",
       quantile_cont(value, 0.99) AS "p(99)"
FROM (
    SELECT metric, data.value AS value
    FROM read_json(?, format = 'newline_delimited',
                   columns = {metric: 'VARCHAR', type: 'VARCHAR',
                              data: 'STRUCT(time VARCHAR, value DOUBLE)'})
    WHERE type = 'Point'
)
GROUP BY metric
ORDER BY metric
"""


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: duckdb_summary.py FILE\n")
        return 2
    cursor = duckdb.connect().execute(QUERY, [argv[0]])
    names = [column[0] for column in cursor.description]
    rows = {
        row[0]: dict(zip(names[1:], row[1:], strict=True)) for row in cursor.fetchall()
    }
    sys.stdout.write(json.dumps({"metrics": rows}, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
