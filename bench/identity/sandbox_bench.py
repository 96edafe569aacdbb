"""Ours on sandbox records (sandbox_records.py) at a given size: pairwise precision,
recall and F1 against the people who wrote the records, the time of the whole
resolution and of each model (int_identity__deterministic_components is the identifier
graph's connected components), and the peak memory of Postgres and dbt during the run."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import psutil


def pair_scores(frame: pd.DataFrame) -> dict:
    """Pairwise scores from (person_id, customer_id) per record, without listing pairs."""

    def pairs(sizes: pd.Series) -> int:
        return int((sizes * (sizes - 1) // 2).sum())

    true_pairs = pairs(frame.groupby("person_id").size())
    predicted = pairs(frame.groupby("customer_id").size())
    tp = pairs(frame.groupby(["customer_id", "person_id"]).size())
    precision = tp / predicted if predicted else 1.0
    recall = tp / true_pairs if true_pairs else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 5),
        "recall": round(recall, 5),
        "f1": round(f1, 5),
        "predicted_pairs": predicted,
        "true_pairs": true_pairs,
    }


class PeakMemory:
    """Peak summed RSS of every postgres and dbt process (the CLI runs dbt as
    omnicanal.identity.dbt_worker), sampled every 0.2 s."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            total = 0
            for proc in psutil.process_iter(["name", "cmdline", "memory_info"]):
                name = proc.info["name"] or ""
                cmd = " ".join(proc.info["cmdline"] or [])
                if name.startswith("postgres") or "bin/dbt" in cmd or "dbt_worker" in cmd:
                    mem = proc.info["memory_info"]
                    total += mem.rss - getattr(mem, "shared", 0) if mem else 0
            self.peak = max(self.peak, total)
            self._stop.wait(0.2)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def model_seconds(target: Path) -> dict[str, float]:
    results = json.loads((target / "run_results.json").read_text())
    return {
        r["unique_id"].split(".")[-1]: round(r["execution_time"], 2) for r in results["results"]
    }


def fuzzy_overrides(size: int) -> dict:
    """Smaller blocks from 1M records: the sandbox draws names from ~65 first names and
    ~2,000 surnames, so a name block at 1M holds hundreds of people; max_block_size 50
    skips those (the other rules still apply)."""
    return {"max_block_size": 50} if size >= 1_000_000 else {}


def resolve(settings, path: Path, schema: str, size: int) -> tuple[list, float, dict, int, dict]:
    """The whole ``omnicanal identity resolve`` (CSV in, record_id,customer_id CSV out),
    timed; then the mapping read back with its sources, for scoring."""
    from omnicanal.identity.resolve import fetch_mapping, resolve_file

    output = path.with_suffix(".out.csv")
    with PeakMemory() as memory:
        start = time.perf_counter()
        report = resolve_file(settings, path, output, schema=schema, fuzzy=fuzzy_overrides(size))
        seconds = time.perf_counter() - start
    target = settings.home / "identity" / "dbt-target"
    mapping = fetch_mapping(settings, schema)
    return mapping, seconds, model_seconds(target), memory.peak, report.as_dict()


PRECISION_GOAL = 0.999


def splink_scores(
    per_threshold: dict[float, pd.DataFrame], person_of: dict[str, str], seconds: float
) -> dict:
    """Splink's clusters scored at each threshold of the sweep: its best F1, and its best
    recall at precision >= PRECISION_GOAL (None when no threshold reaches it). The choice
    uses the truth, which favours Splink."""
    scored = {}
    for threshold, clusters in per_threshold.items():
        frame = pd.DataFrame(
            {
                "person_id": clusters["record_key"].map(person_of),
                "customer_id": clusters["cluster_id"],
            }
        )
        scored[threshold] = pair_scores(frame)
    best = max(scored, key=lambda t: scored[t]["f1"])
    precise = [t for t in scored if scored[t]["precision"] >= PRECISION_GOAL]
    at_goal = max(precise, key=lambda t: scored[t]["recall"]) if precise else None
    return {
        **scored[best],
        "cluster_threshold": best,
        f"best_recall_at_precision_{PRECISION_GOAL}": (
            {**scored[at_goal], "cluster_threshold": at_goal} if at_goal else None
        ),
        "seconds": round(seconds, 2),
        "per_threshold": {str(t): v for t, v in scored.items()},
    }


def run(settings, size: int, incremental_share: float = 0.01, splink: bool = True) -> dict:
    """Full run on ``size`` records in a fresh schema, then a run with 1% more records."""
    # sandbox_records here, not at the top: the adversarial bench imports this module and
    # must not import the sandbox's generator through it
    import sandbox_records

    from omnicanal.warehouse import connect

    schema = f"identity_bench_sandbox_{size}"
    with connect(settings) as conn:
        conn.execute(f'drop schema if exists "{schema}" cascade')
        conn.commit()
    extra = int(size * incremental_share)
    rows = sandbox_records.generate(size + extra)
    base, new = rows[:size], rows
    truth = {(row[1], row[0]): person for person, row in rows}
    out: dict = {"records": size}
    with tempfile.TemporaryDirectory() as tmp:
        for label, part in (("full", base), ("incremental", new)):
            path = Path(tmp) / f"{label}.csv"
            sandbox_records.write_csv(part, path)
            mapping, seconds, models, peak, report = resolve(settings, path, schema, size)
            frame = pd.DataFrame(
                [(truth[(s, r)], c) for s, r, c in mapping], columns=["person_id", "customer_id"]
            )
            out[label] = {
                **pair_scores(frame),
                "records": len(part),
                "seconds": round(seconds, 2),
                "seconds_load": report["seconds_load"],
                "seconds_dbt": report["seconds_dbt"],
                "peak_memory_mb": round(peak / 2**20),
                "model_seconds": models,
                "models_seconds_total": round(sum(models.values()), 2),
            }
            if label == "full" and splink:
                import splink_anchor  # tuned Splink on the records our models normalised

                per_threshold, splink_seconds, sessions = splink_anchor.run(
                    splink_anchor.read_records(settings, schema)
                )
                person_of = {f"{s}:{r}": person for (s, r), person in truth.items()}
                out["splink"] = splink_scores(per_threshold, person_of, splink_seconds)
                out["splink"]["em_sessions"] = [list(rule) for rule in sessions]
    out["graph_seconds"] = out["full"]["model_seconds"].get(
        "int_identity__deterministic_components"
    )
    out["incremental_over_full_models"] = round(
        out["incremental"]["models_seconds_total"] / out["full"]["models_seconds_total"], 3
    )
    out["incremental_over_full"] = round(out["incremental"]["seconds"] / out["full"]["seconds"], 3)
    if "f1" in out.get("splink", {}):
        out["f1_ratio_ours_over_splink"] = round(out["full"]["f1"] / out["splink"]["f1"], 4)
    return out
