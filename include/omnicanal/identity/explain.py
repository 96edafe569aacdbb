"""``omnicanal identity explain RECORD_ID|CUSTOMER_ID``: why records are one customer.

Everything it prints is read from tables an analyst can query in the identity schema
(``identity_cli`` for ``omnicanal identity resolve``, ``intermediate`` for the pipeline):
the identifier edges (``int_identity__identifiers`` and ``int_identity__identifier_values``:
which values link the customer's records, which a guard stopped, which a household
shares), the cluster guards (``int_identity__clusters``, ``int_identity__guard_audit``) and
each fuzzy pair with the weight of every comparison (``int_identity__fuzzy_pair_weights``,
a waterfall that sums to the pair's match weight).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from psycopg import sql

from omnicanal.config import Settings
from omnicanal.errors import OmnicanalError


@dataclass
class Explanation:
    customer_id: str
    records: list[dict] = field(default_factory=list)
    links: list[dict] = field(default_factory=list)
    stopped: list[dict] = field(default_factory=list)
    households: list[dict] = field(default_factory=list)
    cluster_guards: list[dict] = field(default_factory=list)
    fuzzy_pairs: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "customer_id": self.customer_id,
            "records": self.records,
            "links": self.links,
            "stopped": self.stopped,
            "households": self.households,
            "cluster_guards": self.cluster_guards,
            "fuzzy_pairs": self.fuzzy_pairs,
        }


def _rows(conn, query: sql.Composable, params: dict) -> list[dict]:
    from psycopg import errors

    try:
        cur = conn.execute(query, params)
    except errors.UndefinedTable as error:
        raise OmnicanalError(
            f"an identity table is missing ({error.diag.message_primary}): the schema was "
            "built by an older omnicanal; run `omnicanal identity resolve` (or dbt) again"
        ) from None
    names = [c.name for c in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _customer_of(conn, schema: str, key: str) -> str:
    """The customer_id ``key`` names: a customer_id itself, a record_key (source:id) or
    a record id of one source; an id found in several sources is an error listing them."""
    table = sql.Identifier(schema, "int_identity__record_customers")
    found = conn.execute(
        sql.SQL("select 1 from {} where customer_id = %(key)s limit 1").format(table),
        {"key": key},
    ).fetchone()
    if found:
        return key
    rows = conn.execute(
        sql.SQL(
            "select record_key, customer_id from {} where record_key = %(key)s"
            " or record_key like '%%:' || %(key)s order by record_key"
        ).format(table),
        {"key": key},
    ).fetchall()
    exact = [row for row in rows if row[0] == key]
    if exact or len(rows) == 1:
        return (exact or rows)[0][1]
    if rows:
        raise OmnicanalError(
            f"{key!r} is a record id in several sources: "
            + ", ".join(row[0] for row in rows)
            + "; name one as SOURCE:RECORD_ID"
        )
    raise OmnicanalError(
        f"no record or customer {key!r} in schema {schema}: give a customer_id, a record id "
        "or SOURCE:RECORD_ID of the last `omnicanal identity resolve` (--schema to pick another)"
    )


def explain(settings: Settings, key: str, schema: str = "identity_cli") -> Explanation:
    """The facts behind one customer (named by ``key``: customer_id, record id or
    source:record_id), read from the identity tables of ``schema``."""
    from omnicanal.warehouse import connect

    def t(name: str) -> sql.Identifier:
        return sql.Identifier(schema, name)

    with connect(settings) as conn:
        exists = conn.execute(
            "select to_regclass(%s) is not null",
            (f'"{schema}".int_identity__record_customers',),
        ).fetchone()[0]
        if not exists:
            raise OmnicanalError(
                f"schema {schema} holds no identity tables: run `omnicanal identity resolve` "
                "first, or name the schema that holds them with --schema"
            )
        customer = _customer_of(conn, schema, key)
        out = Explanation(customer)
        params = {"customer": customer}
        members = sql.SQL(
            "select r.record_num, r.record_key from {customers} as c"
            " join {records} as r on r.record_key = c.record_key"
            " where c.customer_id = %(customer)s"
        ).format(customers=t("int_identity__record_customers"), records=t("int_identity__records"))
        out.records = _rows(
            conn,
            sql.SQL(
                "select r.record_key, r.full_name, r.email, r.phone_e164 as phone, r.cpf,"
                " r.birth_date_key as birth_date, r.city"
                " from {records} as r where r.record_num in (select record_num from ({m}) as m)"
                " order by r.record_key"
            ).format(records=t("int_identity__records"), m=members),
            params,
        )
        edges = sql.SQL(
            "select v.identifier_type, v.identifier_label as value, v.guard, v.guard_detail,"
            " v.people_count, v.names_count, v.name_groups,"
            " array_agg(i.record_key order by i.record_key) as record_keys,"
            " array_agg(distinct v.name_groups ->> i.full_name_key) as groups"
            " from {identifiers} as i join {values} as v on v.value_id = i.value_id"
            " where i.record_num in (select record_num from ({m}) as m)"
            " group by v.value_id, v.identifier_type, v.identifier_label, v.guard,"
            " v.guard_detail, v.people_count, v.names_count, v.name_groups"
            " order by v.identifier_type, v.identifier_label"
        ).format(
            identifiers=t("int_identity__identifiers"),
            values=t("int_identity__identifier_values"),
            m=members,
        )
        for edge in _rows(conn, edges, params):
            if edge["guard"]:
                out.stopped.append(edge)
            else:
                if edge["name_groups"]:
                    out.households.append(edge)
                if len(edge["record_keys"]) > 1:
                    out.links.append(edge)
        out.cluster_guards = _rows(
            conn,
            sql.SQL(
                "select a.guard, a.reason from {audit} as a where a.cluster_num in ("
                " select c.pre_guard_cluster_num from {clusters} as c"
                " where c.record_num in (select record_num from ({m}) as m)"
                " and c.guard is not null)"
            ).format(
                audit=t("int_identity__guard_audit"),
                clusters=t("int_identity__clusters"),
                m=members,
            ),
            params,
        )
        weights = _rows(
            conn,
            sql.SQL(
                "select ra.record_key as record_a, rb.record_key as record_b, w.match_weight,"
                " w.comparison, w.level_name, w.weight, w.term_frequency"
                " from {weights} as w"
                " join {records} as ra on ra.record_num = w.record_num_a"
                " join {records} as rb on rb.record_num = w.record_num_b"
                " where w.is_match and w.record_num_a in (select record_num from ({m}) as m)"
                " and w.record_num_b in (select record_num from ({m}) as m)"
                " order by w.match_weight desc, ra.record_key, rb.record_key, w.comparison_index"
            ).format(
                weights=t("int_identity__fuzzy_pair_weights"),
                records=t("int_identity__records"),
                m=members,
            ),
            params,
        )
    pairs: dict[tuple[str, str], dict] = {}
    for row in weights:
        pair = pairs.setdefault(
            (row["record_a"], row["record_b"]),
            {
                "record_a": row["record_a"],
                "record_b": row["record_b"],
                "match_weight": round(float(row["match_weight"]), 2),
                "comparisons": [],
            },
        )
        pair["comparisons"].append(
            {
                "comparison": row["comparison"],
                "level": row["level_name"],
                "weight": round(float(row["weight"]), 2),
                # an exact agreement weighs by how common the value is
                "term_frequency": row["term_frequency"],
            }
        )
    out.fuzzy_pairs = list(pairs.values())
    return out


def render(explanation: Explanation) -> str:
    """The explanation as text for a terminal."""
    e = explanation
    lines = [f"customer {e.customer_id}: {len(e.records)} record(s)"]
    for r in e.records:
        shown = [r["full_name"] or "(no name)"] + [
            f"{k} {r[k]}" for k in ("email", "phone", "cpf", "birth_date", "city") if r[k]
        ]
        lines.append(f"  {r['record_key']}: " + ", ".join(shown))
    lines.append("linked by identifiers (records that share a value that links):")
    if not e.links:
        lines.append("  none")
    for edge in e.links:
        lines.append(
            f"  {edge['identifier_type']} {edge['value']}: " + ", ".join(edge["record_keys"])
        )
    if e.households:
        lines.append("shared by several people (links each one's records only):")
        for edge in e.households:
            groups = sorted(set(edge["name_groups"].values()))
            lines.append(
                f"  {edge['identifier_type']} {edge['value']}: {edge['people_count']} people"
                f" ({'; '.join(groups)}); this customer is "
                + ", ".join(g or "(a record whose name fits none for sure)" for g in edge["groups"])
            )
    lines.append("guards that fired on this customer's values:")
    if not (e.stopped or e.cluster_guards):
        lines.append("  none")
    for edge in e.stopped:
        why = edge["guard_detail"] or (
            f"carried by {edge['people_count']} people ({edge['names_count']} names)"
            if edge["guard"] == "max_people_per_value"
            else ""
        )
        lines.append(
            f"  {edge['guard']}: {edge['identifier_type']} {edge['value']}"
            f" on {', '.join(edge['record_keys'])}: links nobody" + (f"; {why}" if why else "")
        )
    for guard in e.cluster_guards:
        lines.append(f"  {guard['guard']}: {guard['reason']}")
    lines.append("fuzzy pairs (Fellegi-Sunter, log2 weights; they sum to the match weight):")
    if not e.fuzzy_pairs:
        lines.append("  none")
    for pair in e.fuzzy_pairs:
        lines.append(f"  {pair['record_a']} ~ {pair['record_b']}: {pair['match_weight']:+.2f}")
        for c in pair["comparisons"]:
            level = f" ({c['level']})" if c["level"] else ""
            common = c.get("term_frequency")
            held = f"  value held by {common:.2%} of records" if common is not None else ""
            lines.append(f"    {c['comparison']:<12}{level:<16} {c['weight']:+7.2f}{held}")
    return "\n".join(lines)
