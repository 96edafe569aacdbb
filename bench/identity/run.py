"""Identity resolution benchmark: ours (dbt SQL on Postgres) against Splink, in one run.

    .venv/bin/python bench/identity/run.py                      # everything
    .venv/bin/python bench/identity/run.py --only febrl3 febrl4 # pick parts
    .venv/bin/python bench/identity/run.py --only sandbox --sizes 10000 100000 1000000
    .venv/bin/python bench/identity/run.py --only adversarial --people 20000

Splink runs on the sandbox records up to 100k by default (--splink-max-size 1000000 to
run it at 1M too; --no-splink-sandbox to skip it).

Prints a line per figure; the last line is one JSON object with all of them. Each timed
run holds an exclusive lock on /tmp/omnicanal-bench.lock, so benches of other engineers
on this machine do not overlap with it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/

from benchlock import bench_lock  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=["febrl3", "febrl4", "sandbox", "adversarial"])
    parser.add_argument("--sizes", nargs="*", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--no-splink-sandbox", action="store_true")
    parser.add_argument("--splink-max-size", type=int, default=100_000)
    parser.add_argument(
        "--people", type=int, default=20_000, help="adversarial file: people (~2.1 records each)"
    )
    parser.add_argument("--seed", type=int, default=13, help="adversarial file: seed")
    parser.add_argument("--no-splink-adversarial", action="store_true")
    args = parser.parse_args()

    from omnicanal import warehouse
    from omnicanal.settings import get_settings

    settings = get_settings()
    warehouse.up(settings)
    results: dict = {}
    for name in ("febrl3", "febrl4"):
        if name in args.only:
            import febrl

            with bench_lock():
                results[name] = febrl.run(settings, name)
            print(name, json.dumps(results[name]), flush=True)
    if "sandbox" in args.only:
        import sandbox_bench

        for size in args.sizes:
            splink = not args.no_splink_sandbox and size <= args.splink_max_size
            with bench_lock():
                results[f"sandbox_{size}"] = sandbox_bench.run(settings, size, splink=splink)
            print(f"sandbox_{size}", json.dumps(results[f"sandbox_{size}"]), flush=True)
    if "adversarial" in args.only:
        import adversarial_bench

        with bench_lock():
            results["adversarial"] = adversarial_bench.run(
                settings, args.people, seed=args.seed, splink=not args.no_splink_adversarial
            )
        print("adversarial", json.dumps(results["adversarial"]), flush=True)
    for name in ("febrl3", "febrl4"):
        if name in results:
            ours, splink = results[name]["ours"], results[name]["splink"]
            results[name]["f1_ratio_ours_over_splink"] = round(ours["f1"] / splink["f1"], 4)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
