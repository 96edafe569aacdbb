"""A dbt process that imports dbt first and learns its command afterwards.

``omnicanal identity resolve`` starts it before loading the CSV: importing dbt takes
about three seconds, which then overlap the load on the machine's other core. The
command (dbt's arguments, as a JSON list) arrives as one line on stdin; an empty stdin
(the load failed) ends it without running anything. Exit code: 0 when dbt succeeded.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    from dbt.cli.main import dbtRunner

    line = sys.stdin.readline()
    if not line.strip():
        return 3
    result = dbtRunner().invoke(json.loads(line))
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
