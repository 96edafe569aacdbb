"""Splink 5 (DuckDB) tuned as a competent user would tune it, on records as our
int_identity__records normalised them (identifiers in E.164, verified CPFs, name keys
unaccented and lower-cased; so the comparison is of matching, not of clean-up). Splink
gets these columns only, none of our guards, seeds or nickname lists.

What a competent user does beyond Splink's example settings:
- a name typed in one box (WhatsApp, support, a paper form) is split into first name
  and the rest, and the family name (the last surname, particles and Filho/Júnior/Neto
  left out) is a column of its own: Brazilian records cut and reorder surnames;
- term-frequency adjustments on every exact level of names, city and postcode (a
  "Maria" or "Silva" agreement weighs less than an "Eliseu" or "Quaresma" one);
- u for identifiers from their value frequencies: email, phone and CPF are exact-match
  comparisons with term-frequency adjustment, so an agreement on value x weighs
  m / tf(x), tf(x) the share of records holding x (a household landline, the store's
  phone or 123.456.789-09 held by hundreds weighs little; a personal email much);
  the remaining u (names' fuzzy levels, dates, address) from random sampling with a
  larger ``max_pairs`` than the default's 1e6;
- the prior (probability_two_random_records_match) from deterministic rules: exact
  email, phone or CPF, or first name + family name + birth date;
- EM sessions blocked so that every level keeps pairs of both kinds and no m goes to
  zero (Splink 5 raises below 1e-300): one on first name + family name (trains the
  identifiers, birth date, city, postcode, address), one on birth date + city (trains
  the names); birth date as exact / one character off / else (the wider date levels
  of DateOfBirthComparison hold no match in a session and EM sends their m to zero).
  Where a session still fails on some data, the model is rebuilt without it and the
  next rule of EM_RULES is tried (``train``), until every comparison is trained.
"""

from __future__ import annotations

import time

import pandas as pd

COLUMNS = [
    "record_key",
    "email",
    "phone_e164",
    "cpf",
    "first_name_key",
    "last_name_key",
    "full_name_key",
    "birth_date_key",
    "city_key",
    "postcode_key",
    "address_key",
]
PARTICLES = {"da", "de", "do", "das", "dos", "e", "d"}
AGNOMES = {"filho", "junior", "jr", "neto", "sobrinho"}
#: clusters are scored at each of these match probabilities (a sweep: best F1, and
#: best recall at precision >= .999)
THRESHOLDS = (0.5, 0.8, 0.9, 0.95, 0.99, 0.999, 0.9999, 0.99999, 0.999999, 0.9999999, 0.99999999)


def read_records(settings, schema: str) -> pd.DataFrame:
    from omnicanal.warehouse import connect

    with connect(settings) as conn:
        cur = conn.execute(f'select {", ".join(COLUMNS)} from "{schema}".int_identity__records')
        return pd.DataFrame(cur.fetchall(), columns=COLUMNS)


def family_name(last: str | None) -> str | None:
    if not last:
        return None
    tokens = [t for t in last.split() if t not in PARTICLES and t not in AGNOMES]
    return tokens[-1] if tokens and len(tokens[-1]) > 1 else None


def prepare(frame: pd.DataFrame) -> pd.DataFrame:
    """First name, last name and family name, with one-box names split."""
    frame = frame.copy()
    split = frame["full_name_key"].fillna("").str.split(" ", n=1, expand=True)
    split = split.reindex(columns=[0, 1])
    no_parts = frame["first_name_key"].isna() & frame["last_name_key"].isna()
    frame.loc[no_parts, "first_name_key"] = split.loc[no_parts, 0].replace("", None)
    frame.loc[no_parts, "last_name_key"] = split.loc[no_parts, 1].replace("", None)
    frame["family_name"] = frame["last_name_key"].map(family_name)
    frame["first_name_key"] = frame["first_name_key"].map(
        lambda v: v.split()[0] if isinstance(v, str) and v.split() else None
    )
    return frame.drop(columns=["full_name_key"]).astype(object).where(frame.notna(), None)


def settings_for_records():
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    def identifier(column: str):
        return cl.ExactMatch(column).configure(term_frequency_adjustments=True)

    last_name = cl.CustomComparison(
        output_column_name="last_name",
        comparison_levels=[
            cll.NullLevel("family_name"),
            cll.ExactMatchLevel("last_name_key").configure(tf_adjustment_column="last_name_key"),
            cll.ExactMatchLevel("family_name").configure(tf_adjustment_column="family_name"),
            cll.JaroWinklerLevel("family_name", 0.9),
            cll.ElseLevel(),
        ],
    )
    birth = cl.CustomComparison(
        output_column_name="birth_date",
        comparison_levels=[
            cll.NullLevel("birth_date_key"),
            cll.ExactMatchLevel("birth_date_key"),
            cll.DamerauLevenshteinLevel("birth_date_key", 1),
            cll.ElseLevel(),
        ],
    )
    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="record_key",
        blocking_rules_to_generate_predictions=[
            block_on("email"),
            block_on("phone_e164"),
            block_on("cpf"),
            block_on("first_name_key", "family_name"),
            block_on("first_name_key", "birth_date_key"),
            block_on("family_name", "birth_date_key"),
            block_on("first_name_key", "postcode_key"),
            block_on("family_name", "postcode_key"),
            block_on("birth_date_key", "city_key"),
            block_on("address_key"),
        ],
        comparisons=[
            identifier("email"),
            identifier("phone_e164"),
            identifier("cpf"),
            cl.NameComparison("first_name_key").configure(term_frequency_adjustments=True),
            last_name,
            birth,
            cl.ExactMatch("city_key").configure(term_frequency_adjustments=True),
            cl.LevenshteinAtThresholds("postcode_key", [1]).configure(
                term_frequency_adjustments=True
            ),
            cl.JaroWinklerAtThresholds("address_key", [0.9, 0.7]),
        ],
        retain_intermediate_calculation_columns=False,
    )


#: the columns each comparison reads (a session blocked on a column trains no comparison
#: that reads it)
COMPARISON_COLUMNS = {
    "email": {"email"},
    "phone_e164": {"phone_e164"},
    "cpf": {"cpf"},
    "first_name_key": {"first_name_key"},
    "last_name": {"last_name_key", "family_name"},
    "birth_date": {"birth_date_key"},
    "city_key": {"city_key"},
    "postcode_key": {"postcode_key"},
    "address_key": {"address_key"},
}
#: EM sessions in the order tried, until every comparison is trained: names first (it
#: trains the identifiers, birth date and places), then birth date + city (the names)
EM_RULES = (
    ("first_name_key", "family_name"),
    ("birth_date_key", "city_key"),
    ("postcode_key",),
    ("birth_date_key",),
    ("email",),
    ("phone_e164",),
)
DETERMINISTIC_RULES = (
    ("email",),
    ("phone_e164",),
    ("cpf",),
    ("first_name_key", "family_name", "birth_date_key"),
)


def _linker(frame: pd.DataFrame, max_pairs_for_u: float, recall: float):
    """A model with its prior and u estimated, m not yet."""
    from splink import DuckDBAPI, Linker, block_on

    linker = Linker(DuckDBAPI().register(frame), settings_for_records())
    linker.training.estimate_probability_two_random_records_match(
        [block_on(*rule) for rule in DETERMINISTIC_RULES], recall=recall
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs_for_u, seed=2)
    return linker


def train(frame: pd.DataFrame, max_pairs_for_u: float = 1e7, recall: float = 0.8):
    """The trained model and the EM sessions it kept. A session whose EM drives some m
    below 1e-300 (a level that only non-matches reach in its pairs: on the sandbox's
    records, where birth date and postcode are copied unchanged, "one character off"
    holds only namesakes) makes Splink 5 raise, and the failed session leaves the model
    without the comparisons of its rule; so the model is built again without that
    session and the next rule is tried."""
    from splink import block_on

    kept: list[tuple[str, ...]] = []
    trained: set[str] = set()
    linker = _linker(frame, max_pairs_for_u, recall)
    for rule in EM_RULES:
        if trained == set(COMPARISON_COLUMNS):
            break
        gains = {c for c, cols in COMPARISON_COLUMNS.items() if not cols & set(rule)}
        if not gains - trained:
            continue
        try:
            linker.training.estimate_parameters_using_expectation_maximisation(block_on(*rule))
        except ValueError:
            linker = _linker(frame, max_pairs_for_u, recall)
            for done in kept:
                linker.training.estimate_parameters_using_expectation_maximisation(block_on(*done))
            continue
        kept.append(rule)
        trained |= gains
    return linker, kept


def run(
    frame: pd.DataFrame, max_pairs_for_u: float = 1e7, recall: float = 0.8
) -> tuple[dict[float, pd.DataFrame], float, list[tuple[str, ...]]]:
    """{threshold: (record_key, cluster_id) per record}, the seconds of training,
    prediction and every clustering, and the EM sessions kept."""
    start = time.perf_counter()
    linker, sessions = train(prepare(frame), max_pairs_for_u, recall)
    predictions = linker.inference.predict(threshold_match_probability=min(THRESHOLDS))
    out = {}
    for threshold in THRESHOLDS:
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, threshold
        ).as_pandas_dataframe()
        out[threshold] = clusters[["record_key", "cluster_id"]]
    return out, time.perf_counter() - start, sessions
