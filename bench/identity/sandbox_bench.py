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


SPLINK_COLUMNS = [
    "record_key",
    "email",
    "phone_e164",
    "cpf",
    "first_name_key",
    "last_name_key",
    "birth_date_key",
    "city_key",
    "postcode_key",
    "address_key",
]


SPLINK_CLUSTER_THRESHOLDS = (0.9, 0.95, 0.99)  # as in febrl.py


def run_splink(settings, schema: str) -> dict[float, tuple[pd.DataFrame, float]]:
    """Splink 5 (DuckDB), unsupervised, on the records as our int_identity__records
    normalised them (so the comparison is of matching, not of phone or email clean-up;
    Splink gets these columns only, none of our guards): exact email, phone and CPF,
    Splink's name comparisons (term-frequency adjusted exact match) and birth date
    comparison, exact city and postcode, Jaro-Winkler address; candidate pairs from the
    identifier rules, our name/birth-date pairs and the address. Trained as Splink's
    FEBRL3 example trains, which is also how ours trains:
    - prior: pairs agreeing on first name, last name and birth date, recall .9 (our
      `prior`);
    - u from 1e6 random pairs;
    - m by EM blocked on birth date, then on postcode (our first two `em_sessions`).
      Not on first + last name (our third) nor on email or phone: the sandbox copies
      birth date, postcode, address and city unchanged to all of a person's records,
      so in those sessions levels such as "birth dates a month apart" or "other
      postcode" hold only the non-matching pairs the rule lets in (namesakes, the
      store's phone, junk emails); EM sends their m towards 0, and Splink 5 raises
      once one falls below 1e-300 ("m_probability value 0.0 is below the minimum
      allowed value"). A session that raises also leaves the model without the
      comparisons of its rule, so it cannot be caught and skipped.
    Clusters at each of SPLINK_CLUSTER_THRESHOLDS; run() keeps the best, chosen with the
    truth (which favours Splink). Splink has no over-merge guards.
    Returns {threshold: ((record_key, cluster_id) per record, seconds)}, the seconds
    of the training, prediction and that clustering (not of reading the records)."""
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    from omnicanal.warehouse import connect

    with connect(settings) as conn:
        cur = conn.execute(
            f'select {", ".join(SPLINK_COLUMNS)} from "{schema}".int_identity__records'
        )
        frame = pd.DataFrame(cur.fetchall(), columns=SPLINK_COLUMNS)
    start = time.perf_counter()
    splink_settings = SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="record_key",
        blocking_rules_to_generate_predictions=[
            block_on("email"),
            block_on("phone_e164"),
            block_on("cpf"),
            block_on("first_name_key", "last_name_key"),
            block_on("last_name_key", "birth_date_key"),
            block_on("first_name_key", "birth_date_key"),
            block_on("address_key"),
        ],
        comparisons=[
            cl.ExactMatch("email"),
            cl.ExactMatch("phone_e164"),
            cl.ExactMatch("cpf"),
            cl.NameComparison("first_name_key"),
            cl.NameComparison("last_name_key"),
            cl.DateOfBirthComparison(
                "birth_date_key",
                input_is_string=True,
                datetime_format="%Y%m%d",
                invalid_dates_as_null=True,
            ),
            cl.ExactMatch("city_key"),
            cl.ExactMatch("postcode_key"),
            cl.JaroWinklerAtThresholds("address_key", [0.9, 0.7]),
        ],
        retain_intermediate_calculation_columns=False,
    )
    linker = Linker(DuckDBAPI().register(frame), splink_settings)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("first_name_key", "last_name_key", "birth_date_key")], recall=0.9
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=2)
    for rule in (block_on("birth_date_key"), block_on("postcode_key")):
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    predictions = linker.inference.predict(
        threshold_match_probability=min(SPLINK_CLUSTER_THRESHOLDS)
    )
    trained = time.perf_counter() - start
    out: dict[float, tuple[pd.DataFrame, float]] = {}
    for threshold in SPLINK_CLUSTER_THRESHOLDS:
        cluster_start = time.perf_counter()
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, threshold
        ).as_pandas_dataframe()
        seconds = trained + time.perf_counter() - cluster_start
        out[threshold] = (clusters[["record_key", "cluster_id"]], seconds)
    return out


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
                try:
                    per_threshold = run_splink(settings, schema)
                except ValueError as error:  # an m that EM drove below 1e-300 (see run_splink)
                    out["splink"] = {"error": str(error)[:200]}
                    continue
                person_of = {f"{s}:{r}": person for (s, r), person in truth.items()}
                scored = {}
                for threshold, (clusters, splink_seconds) in per_threshold.items():
                    clusters = clusters.assign(person_id=clusters["record_key"].map(person_of))
                    clusters = clusters.rename(columns={"cluster_id": "customer_id"})
                    scored[threshold] = {
                        **pair_scores(clusters),
                        "seconds": round(splink_seconds, 2),
                    }
                best = max(scored, key=lambda t: scored[t]["f1"])
                out["splink"] = {**scored[best], "cluster_threshold": best}
                out["splink_per_threshold"] = {str(t): v for t, v in scored.items()}
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
