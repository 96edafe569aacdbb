"""The installed SQL functions the identity models call, called directly: dbt installs
them (models/intermediate/identity/functions) once in a database of this module.
identity.connected_components gets an edges query, its labels compared with a
union-find in Python; identity.clusters gets a few records' edges, and each cluster
guard is checked on the records it exists for. The fuzzy stage's learning gets small
hand-made pattern tables: u from level counts and from an identifier's values
(identity.fuzzy_u), m and the match share by EM against a Python EM
(identity.fuzzy_em), the sessions, prior and seed of identity.fuzzy_parameters, and
each pattern's weight (identity.fuzzy_pattern_weights)."""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql
from sync_pipeline import run_dbt


@pytest.fixture(scope="module")
def functions_db(pg_admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database with the identity functions installed by `dbt run`, and nothing else."""
    name = f"omnicanal_idfn_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = psycopg.conninfo.make_conninfo(pg_admin_url, dbname=name)
    try:
        run_dbt(
            url,
            tmp_path_factory.mktemp("idfn"),
            (),
            "run",
            "--select",
            "path:models/intermediate/identity/functions",
        )
        yield url
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


def components(url: str, edges: list[tuple[int | None, object]]) -> dict[int, int]:
    """node -> lab from identity.connected_components over ``edges`` (node, value)."""
    with psycopg.connect(url) as conn:
        conn.execute("create temp table edges (node bigint, value_id text)")
        with conn.cursor().copy("copy edges (node, value_id) from stdin") as copy:
            for node, value in edges:
                copy.write_row((node, None if value is None else str(value)))
        rows = conn.execute(
            "select node, lab from identity.connected_components("
            "'select node, value_id from edges')"
        ).fetchall()
    labels = dict(rows)
    assert len(labels) == len(rows), "a node came back twice"
    return labels


def expected(edges: list[tuple[int | None, object]]) -> dict[int, int]:
    """Union-find: every node with a non-null edge -> the smallest node of its component."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first_of_value: dict[object, int] = {}
    for node, value in edges:
        if node is None or value is None:
            continue
        parent.setdefault(node, node)
        if value in first_of_value:
            a, b = find(node), find(first_of_value[value])
            parent[max(a, b)] = min(a, b)
        else:
            first_of_value[value] = node
    return {node: find(node) for node in parent}


def test_a_chain_is_one_component_labelled_by_its_smallest_node(functions_db: str) -> None:
    # 500 nodes in a line, numbered out of order: label propagation alone needs
    # hundreds of passes (and gives up at 100); pointer jumping needs a handful
    order = list(range(1, 501))
    random.Random(7).shuffle(order)
    edges = [(n, f"v{i}") for i, n in enumerate(order)] + [
        (n, f"v{i + 1}") for i, n in enumerate(order[:-1])
    ]
    assert components(functions_db, edges) == {n: 1 for n in order}


def test_a_star_a_cycle_and_two_components(functions_db: str) -> None:
    edges = [
        # a star: one value (a shared phone) on five records
        *[(n, "phone") for n in (40, 12, 33, 17, 25)],
        # a cycle: 7 - 9 - 8 - 7
        (9, "a"), (7, "a"), (9, "b"), (8, "b"), (8, "c"), (7, "c"),
    ]  # fmt: skip
    assert components(functions_db, edges) == {
        **{n: 12 for n in (40, 12, 33, 17, 25)},
        **{n: 7 for n in (7, 8, 9)},
    }


def test_isolated_nodes_and_null_edges(functions_db: str) -> None:
    edges = [
        (5, "only mine"),  # a value nobody else holds: a component of one
        (6, None),  # a null value connects nothing (and is no node)
        (7, None),
        (None, "x"),  # nor does a null node
        (8, "x"),
    ]
    assert components(functions_db, edges) == {5: 5, 8: 8}


def test_a_random_graph_matches_union_find(functions_db: str) -> None:
    rng = random.Random(13)
    edges = [(rng.randrange(1, 3000), rng.randrange(0, 2500)) for _ in range(3000)]
    labels = components(functions_db, edges)
    assert labels == expected(edges)
    assert 1 < len(set(labels.values())) < len(labels)  # neither all apart nor all one


def test_an_empty_graph_and_a_bad_query(functions_db: str) -> None:
    assert components(functions_db, []) == {}
    with psycopg.connect(functions_db) as conn:
        with pytest.raises(psycopg.errors.UndefinedColumn, match="value_id"):
            conn.execute(
                "select * from identity.connected_components('select 1 as node, 2 as value')"
            )


def test_it_leaves_no_temp_table_behind(functions_db: str) -> None:
    with psycopg.connect(functions_db) as conn:
        conn.execute(
            "select * from identity.connected_components("
            "'select * from (values (1, 1), (2, 1)) as e (node, value_id)')"
        ).fetchall()
        left = conn.execute(
            "select relname from pg_class where relname like '\\_identity\\_cc\\_%'"
            " and relpersistence = 't'"
        ).fetchall()
    assert left == []


GUARDS = {"max_values_per_customer": {"cpf": 1}, "max_cluster_size": 200}


def clusters(
    url: str,
    edges: list[tuple[int, str, str]],
    names: dict[int, str | None],
    guards: dict = GUARDS,
    scope: list[int] | None = None,
) -> dict[int, tuple[int, int, str | None]]:
    """node -> (lab, pre_guard_lab, guard) from identity.clusters. ``edges`` are (record,
    value, type), a fuzzy pair two rows of type 'fuzzy' with one value; every record of
    ``names`` (record -> full name, its first word the canonical first name) is its own
    deterministic component unless an identifier edge joins it to another."""
    det = components(url, [(n, f"{t}:{v}") for n, v, t in edges if t != "fuzzy"])
    with psycopg.connect(url) as conn:
        conn.execute("create temp table e (node bigint, v text, t text)")
        conn.execute("create temp table r (record_num bigint, name text, component_num bigint)")
        with conn.cursor().copy("copy e from stdin") as copy:
            for row in edges:
                copy.write_row(row)
        with conn.cursor().copy("copy r from stdin") as copy:
            for record, name in names.items():
                copy.write_row((record, name, det.get(record, record)))
        rows = conn.execute(
            "select * from identity.clusters("
            " %s,"
            " 'select node, hashtextextended(t || '':'' || v, 0) as value_id,"
            "  t as identifier_type from e',"
            " 'select record_num, component_num from r',"
            " 'select record_num, name as full_name_key,"
            "  split_part(name, '' '', 1) as first_name_canon from r',"
            " 'select node, t as identifier_type, hashtextextended(t || '':'' || v, 0)"
            "  as value_id from e where t <> ''fuzzy''',"
            " %s)",
            (
                None if scope is None else f"select unnest(array{scope}::bigint[]) as record_num",
                psycopg.types.json.Jsonb(guards),
            ),
        ).fetchall()
    return {node: (lab, pre, guard) for node, lab, pre, guard in rows}


def test_clusters_join_components_by_fuzzy_pairs(functions_db: str) -> None:
    edges = [(1, "ana@x", "email"), (2, "ana@x", "email"), (2, "p12", "fuzzy"), (3, "p12", "fuzzy")]
    got = clusters(functions_db, edges, {1: "ana lima", 2: "ana lima", 3: "ana l", 4: "bia"})
    assert got == {1: (1, 1, None), 2: (1, 1, None), 3: (1, 1, None)}  # 4: no edge, not here


def test_a_second_cpf_splits_a_cluster_per_cpf(functions_db: str) -> None:
    # Bia and Caio share a phone; each has a CPF: two people. Dora holds only the phone.
    edges = [
        (1, "111", "cpf"), (1, "bia@x", "email"), (2, "bia@x", "email"),
        (3, "222", "cpf"),
        (1, "9999", "phone"), (3, "9999", "phone"), (4, "9999", "phone"),
    ]  # fmt: skip
    got = clusters(functions_db, edges, {1: "bia s", 2: "bia s", 3: "caio s", 4: "dora s"})
    guard = "max_values_per_customer:cpf"
    assert got == {1: (1, 1, guard), 2: (1, 1, guard), 3: (3, 1, guard), 4: (4, 1, guard)}
    # no limit on CPFs: one cluster
    one = clusters(functions_db, edges, {1: "bia s", 2: "bia s", 3: "caio s", 4: "dora s"}, {})
    assert {lab for lab, _, _ in one.values()} == {1}


def test_a_nameless_record_does_not_bridge_two_people(functions_db: str) -> None:
    # Sônia's CPF and Marcos's mobile on one till sale with no name: Sônia and Marcos
    # stay apart, the sale goes with the CPF (the strongest identifier)
    edges = [
        (1, "333", "cpf"), (2, "333", "cpf"), (2, "8888", "phone"), (3, "8888", "phone"),
    ]  # fmt: skip
    names = {1: "sonia r", 2: None, 3: "marcos r"}
    got = clusters(functions_db, edges, names)
    assert got == {
        1: (1, 1, "nameless_bridge"),
        2: (1, 1, "nameless_bridge"),
        3: (3, 1, "nameless_bridge"),
    }
    off = clusters(functions_db, edges, names, {**GUARDS, "nameless_bridge": False})
    assert {lab for lab, _, _ in off.values()} == {1}


def test_a_cluster_too_large_keeps_its_strong_links_only(functions_db: str) -> None:
    edges = [(n, "7777", "phone") for n in (1, 2, 3)] + [(2, "e@x", "email"), (3, "e@x", "email")]
    got = clusters(functions_db, edges, {1: "a", 2: "a", 3: "a"}, {"max_cluster_size": 2})
    assert got == {
        1: (1, 1, "max_cluster_size"),
        2: (2, 1, "max_cluster_size"),
        3: (2, 1, "max_cluster_size"),
    }


def test_clusters_of_a_scope_only(functions_db: str) -> None:
    edges = [(1, "a@x", "email"), (2, "a@x", "email"), (3, "b@x", "email"), (4, "b@x", "email")]
    names = {1: "a", 2: "a", 3: "b", 4: "b"}
    assert clusters(functions_db, edges, names, scope=[3, 4]) == {
        3: (3, 3, None),
        4: (3, 3, None),
    }


# ---- the fuzzy stage's parameters ----------------------------------------------------


def values_query(rows: list[tuple]) -> str:
    """A query text over literal rows: ``select * from (values ...) as t (columns)``."""
    columns = ", ".join(rows[0])
    body = ", ".join(
        "(" + ", ".join("null" if v is None else repr(v) for v in row) + ")" for row in rows[1:]
    )
    return f"select * from (values {body}) as t ({columns})"


def levels_query(patterns: list[tuple[list[int], int]]) -> str:
    """(levels int[], n) rows: each levels pattern and how many pairs show it."""
    rows = ", ".join(f"(array{levels}::int[], {n}::float8)" for levels, n in patterns)
    return f"select * from (values {rows}) as p (levels, n)"


def pairs_query(patterns: list[tuple[list[int], int]]) -> str:
    """(levels int[]) rows, one a pair: each pattern repeated n times."""
    return f"select p.levels from ({levels_query(patterns)}) as p, generate_series(1, p.n::int)"


def fetch(url: str, query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(query, params).fetchall()
        left = conn.execute(
            "select relname from pg_class where relname like '\\_identity\\_%'"
            " and relpersistence = 't'"
        ).fetchall()
    assert left == [], "a function left its temp tables behind"
    return rows


def fuzzy_u(url: str, pairs: str, comparisons: int, values: str | None = None) -> dict:
    rows = fetch(
        url, "select comp, lvl, u from identity.fuzzy_u(%s, %s, %s)", (pairs, comparisons, values)
    )
    return {(comp, lvl): u for comp, lvl, u in rows}


def test_u_is_each_levels_share_of_random_pairs_plus_one_of_each(functions_db: str) -> None:
    # comparison 1: three disagree, one exact; comparison 2 unknown (0) on one pair
    pairs = pairs_query([([1, 4], 1), ([1, 0], 1), ([4, 1], 1), ([1, 1], 1)])
    u = fuzzy_u(functions_db, pairs, 2)
    assert u == pytest.approx(
        {
            (1, 1): 4 / 8,
            (1, 2): 1 / 8,
            (1, 3): 1 / 8,
            (1, 4): 2 / 8,
            (2, 1): 3 / 7,
            (2, 2): 1 / 7,
            (2, 3): 1 / 7,
            (2, 4): 2 / 7,
        }  # fmt: skip
    )


def test_an_identifiers_exact_u_comes_from_its_values_people(functions_db: str) -> None:
    pairs = pairs_query([([1, 1], 3), ([1, 4], 1)])  # comparison 2: u(4) 2/8 from pairs
    # N = 10 records hold an email: one person's own email on 3 of their records (no
    # common value: max(3 (1 - 1/1), 1) = 1), and a couple's on 2 records of 2 people
    values = values_query(
        [("comp", "records_count", "people_count", "records_total"), (2, 3, 1, 10), (2, 2, 2, 10)]
    )
    u = fuzzy_u(functions_db, pairs, 2, values)
    exact = (3 * 1 + 2 * max(2 * (1 - 1 / 2), 1)) / 10**2  # 0.05
    rest = {1: 4 / 8, 2: 1 / 8, 3: 1 / 8}  # comparison 2's other levels, from the pairs
    assert u[(2, 4)] == pytest.approx(exact)
    for level, share in rest.items():
        assert u[(2, level)] == pytest.approx(share / sum(rest.values()) * (1 - exact))
    assert sum(u[(2, level)] for level in range(1, 5)) == pytest.approx(1)
    assert u[(1, 1)] == pytest.approx(5 / 8)  # comparison 1 has no values: from the pairs
    # a value on every record of many people: u at most 0.5; none shared: at least 1e-12
    common = values_query([("comp", "records_count", "people_count", "records_total"),
                           (2, 10, 10, 10)])  # fmt: skip
    assert fuzzy_u(functions_db, pairs, 2, common)[(2, 4)] == pytest.approx(0.5)
    lone = values_query([("comp", "records_count", "people_count", "records_total"),
                         (2, 1, 1, 10**7)])  # fmt: skip
    assert fuzzy_u(functions_db, pairs, 2, lone)[(2, 4)] == pytest.approx(1e-12)


PRIOR_M = {1: 0.03, 2: 0.04, 3: 0.08, 4: 0.85}


def python_em(patterns, u, iterations):
    """The EM of identity.fuzzy_em, in Python: (m by (comp, lvl), match share)."""
    m = {key: PRIOR_M[key[1]] for key in u}
    lam = 0.1
    for _ in range(iterations):
        post = []
        for levels, n in patterns:
            llr = sum(
                math.log(m[(c, lvl)]) - math.log(u[(c, lvl)])
                for c, lvl in enumerate(levels, 1)
                if lvl > 0
            )
            odds = math.log(lam / (1 - lam)) + min(max(llr, -500), 500)
            post.append((levels, n, 1 / (1 + math.exp(-odds))))
        lam = sum(n * p for _, n, p in post) / sum(n for _, n, _ in post)
        lam = min(max(lam, 1e-6), 1 - 1e-6)
        w = {key: 0.0 for key in u}
        for levels, n, p in post:
            for c, lvl in enumerate(levels, 1):
                if lvl > 0:
                    w[(c, lvl)] += n * p
        m = {
            (c, lvl): (w[(c, lvl)] + 0.01)
            / sum(w[(c, other)] + 0.01 for other in range(1, 5) if (c, other) in u)
            for c, lvl in u
        }
    return m, lam


FLAT_U = {(c, lvl): u for c in (1, 2) for lvl, u in ((1, 0.97), (2, 0.01), (3, 0.01), (4, 0.01))}
U_QUERY = values_query([("comp", "lvl", "u"), *[(c, lvl, u) for (c, lvl), u in FLAT_U.items()]])


def fuzzy_em(url: str, patterns, iterations: int = 25) -> tuple[dict, float]:
    rows = fetch(
        url,
        "select comp, lvl, m, lambda from identity.fuzzy_em(%s, %s, %s)",
        (levels_query(patterns), U_QUERY, iterations),
    )
    assert len({lam for *_, lam in rows}) == 1
    return {(comp, lvl): m for comp, lvl, m, _ in rows}, rows[0][3]


def test_em_finds_the_matches_of_a_tiny_pattern_table(functions_db: str) -> None:
    # 100 pairs agree exactly on both comparisons (one person's records), 900 disagree on
    # both, 50 agree on the first only (an exact u of 0.01: more likely a match than not)
    patterns = [([4, 4], 100), ([1, 1], 900), ([4, 1], 50)]
    m, lam = fuzzy_em(functions_db, patterns)
    want_m, want_lam = python_em(patterns, FLAT_U, 25)
    assert m == pytest.approx(want_m, rel=1e-9)
    assert lam == pytest.approx(want_lam, rel=1e-9)
    assert 100 / 1050 < lam < 150 / 1050
    assert m[(1, 4)] > 0.99  # every match agrees on the first
    assert 0.6 < m[(2, 4)] < 0.8  # and a third of them (the 50) not on the second
    assert min(m.values()) > 0  # every m above zero (the 0.01 of each level)
    for c in (1, 2):
        assert sum(m[(c, lvl)] for lvl in range(1, 5)) == pytest.approx(1)
    # no round: the prior m and the match share 0.1; an unknown level (0) counts nowhere
    m0, lam0 = fuzzy_em(functions_db, [([4, 0], 10)], iterations=0)
    assert m0 == {key: PRIOR_M[key[1]] for key in FLAT_U} and lam0 == 0.1
    m1, _ = fuzzy_em(functions_db, [([4, 0], 10)], iterations=1)
    assert m1[(2, 1)] == m1[(2, 4)] == 0.25  # comparison 2 never informed: 0.01 each


def fuzzy_parameters(url: str, sessions: list[dict], prior: str, seed: float = 0.4242) -> dict:
    pairs = pairs_query([([1, 1], 90), ([4, 1], 10)])
    rows = fetch(
        url,
        "select comp, lvl, m, u, lambda"
        " from identity.fuzzy_parameters(%s, null, %s, %s, 2, 25, %s)",
        (pairs, json.dumps(sessions), prior, seed),
    )
    return {(comp, lvl): (m, u, lam) for comp, lvl, m, u, lam in rows}


def test_parameters_take_m_from_the_sessions_that_did_not_block_on_it(functions_db: str) -> None:
    one = [([0, 4], 100), ([0, 1], 900)]  # blocks on comparison 1: it is 0 throughout
    two = [([4, 0], 60), ([1, 0], 940)]  # blocks on comparison 2
    sessions = [
        {"patterns": levels_query(one), "ignore": [1]},
        {"patterns": levels_query(two), "ignore": [2]},
    ]
    got = fuzzy_parameters(functions_db, sessions, "select 0.01::float8")
    u = {(1, 1): 91 / 104, (1, 2): 1 / 104, (1, 3): 1 / 104, (1, 4): 11 / 104,
         (2, 1): 101 / 104, (2, 2): 1 / 104, (2, 3): 1 / 104, (2, 4): 1 / 104}  # fmt: skip
    assert {key: value[1] for key, value in got.items()} == pytest.approx(u)
    m_two, _ = python_em(two, u, 25)  # comparison 1's m: session two's alone
    m_one, _ = python_em(one, u, 25)
    for lvl in range(1, 5):
        assert got[(1, lvl)][0] == pytest.approx(m_two[(1, lvl)], rel=1e-9)
        assert got[(2, lvl)][0] == pytest.approx(m_one[(2, lvl)], rel=1e-9)
    assert {value[2] for value in got.values()} == {0.01}
    # a comparison no session may estimate keeps the prior m; no session at all: the prior
    only_two = fuzzy_parameters(functions_db, sessions[1:], "select 0.01::float8")
    assert {lvl: only_two[(2, lvl)][0] for lvl in range(1, 5)} == PRIOR_M
    assert fuzzy_parameters(functions_db, [], "select 0.01::float8")[(1, 4)][0] == 0.85
    # lambda within 1e-9 and 0.5
    assert fuzzy_parameters(functions_db, [], "select 0.9::float8")[(1, 1)][2] == 0.5
    assert fuzzy_parameters(functions_db, [], "select 0::float8")[(1, 1)][2] == 1e-9


def test_parameters_seed_the_random_pairs(functions_db: str) -> None:
    # the random pairs' levels from random(): one seed, one u
    pairs = (
        "select array[case when random() < 0.3 then 4 else 1 end] as levels"
        " from generate_series(1, 200)"
    )

    def learn(seed: float) -> dict:
        rows = fetch(
            functions_db,
            "select comp, lvl, u"
            " from identity.fuzzy_parameters(%s, null, '[]', 'select 0.1', 1, 25, %s)",
            (pairs, seed),
        )
        return {(comp, lvl): u for comp, lvl, u in rows}

    assert learn(0.25) == learn(0.25)
    assert learn(0.25) != learn(-0.5)


def test_a_patterns_weight_is_the_prior_plus_each_levels_log_ratio(functions_db: str) -> None:
    parameters = values_query(
        [
            ("comp", "lvl", "m", "u", "lambda"),
            (1, 1, 0.1, 0.8, 0.2),
            (1, 4, 0.8, 0.05, 0.2),
            (2, 1, 0.2, 0.9, 0.2),
            (2, 4, 0.7, 0.01, 0.2),
        ]  # fmt: skip
    )
    patterns = (
        "select * from (values (array[4, 4]), (array[4, 4]), (array[1, 0]), (array[0, 0]))"
        " as p (levels)"
    )
    rows = fetch(
        functions_db,
        "select levels, weight from identity.fuzzy_pattern_weights(%s, %s)",
        (patterns, parameters),
    )
    got = {tuple(levels): weight for levels, weight in rows}
    prior = math.log2(0.2 / 0.8)
    assert got == pytest.approx(
        {
            (4, 4): prior + math.log2(0.8 / 0.05) + math.log2(0.7 / 0.01),
            (1, 0): prior + math.log2(0.1 / 0.8),  # an unknown comparison weighs nothing
            (0, 0): prior,
        }
    )
