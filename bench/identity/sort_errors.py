"""Sort our errors on the adversarial file by the step that made them, from the tables a
bench run left behind (schema identity_bench_adversarial_<people>; run
`bench/identity/run.py --only adversarial --no-splink-adversarial` first, same --people
and --seed).

    .venv/bin/python bench/identity/sort_errors.py [--people 20000] [--seed 13] [--examples 5]

adversarial_bench.error_kinds sorts missed pairs by what the two records share; this
script follows each pair through the models instead:
- a missed pair (one person, two customers): in one deterministic component and split
  by a cluster guard; else never a fuzzy candidate (by what else agrees, and by which
  of the blocking keys in AGREEING agree exactly); a candidate
  under the threshold (by its weight); over it but stopped by a rule (two CPFs, the place
  rule, the household rule); or a linked fuzzy pair a cluster guard undid;
- a false pair (two people, one customer): counted per customer by whether its
  deterministic components already mix people (an identifier edge: the value's type) or
  only fuzzy links join them (by the levels of the false link);
- every candidate pair's levels pattern with its truth (true / false pairs, linked or
  not): what a rule on that pattern would gain or cost.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

COMPARISONS = (
    "first_name",
    "last_name",
    "birth_date",
    "city",
    "postcode",
    "address",
    "phone",
    "email",
    "cpf",
)
AT = {name: i for i, name in enumerate(COMPARISONS)}
#: record keys a never-candidate pair is sorted by (which of them agree exactly): what a
#: blocking rule on them would reach
AGREEING = (
    "first_name_canon",
    "family_name_key",
    "birth_date_key",
    "postcode_key",
    "city_key",
)


GENERATION = re.compile(
    r"((?: (?:filho|filha|junior|jr|neto|neta|sobrinho|sobrinha|segundo|terceiro))+)$"
)


def generation(name: str | None) -> str:
    """The generational suffixes closing a full name key, as macro identity_name_generation."""
    found = GENERATION.search(" " + name) if name else None
    return found.group(1).replace(" jr", " junior") if found else ""


def holds_generation(name: str | None, other: str | None) -> bool:
    """Whether `other` holds as words the suffixes closing `name` (a surname Neto moved),
    as macro identity_name_holds_generation."""
    suffix = generation(name)
    return bool(suffix) and f"{suffix} " in f" {other or ''} ".replace(" jr ", " junior ")


def stopped_by(
    levels: list[int], names: tuple[str | None, str | None] = (None, None)
) -> str | None:
    """The rule of macro identity_fuzzy_eligible that stops a pair over the threshold
    (`names`: the two records' full_name_key, for the father-and-son rule)."""
    lv = dict(zip(COMPARISONS, levels, strict=True))
    if lv["cpf"] == 1:
        return "two_cpfs"
    if all(lv[c] <= 1 for c in ("first_name", "last_name", "birth_date", "email", "cpf")):
        return "place_rule"
    if (
        lv["first_name"] >= 1
        and lv["last_name"] >= 1
        and lv["first_name"] + lv["last_name"] <= 3
        and lv["birth_date"] <= 1
        and (
            lv["first_name"] + lv["last_name"] == 2
            or lv["birth_date"] == 1
            or lv["email"] == 1
            or lv["phone"] >= 1
        )
    ):
        return "names_differ"  # both different, or one different and one merely similar
    if (
        lv["first_name"] == 1
        and lv["last_name"] >= 3
        and lv["birth_date"] <= 1
        and max(lv["postcode"], lv["address"], lv["phone"]) >= 3
    ):
        return "household_rule"
    if (
        lv["first_name"] >= 3
        and lv["birth_date"] <= 1
        and generation(names[0]) != generation(names[1])
        and not holds_generation(names[0], names[1])
        and not holds_generation(names[1], names[0])
    ):
        return "generations_differ"  # a father and his son "Filho"
    return None


def pattern(levels: list[int]) -> str:
    return " ".join(f"{c[:5]}={v}" for c, v in zip(COMPARISONS, levels, strict=True) if v)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--examples", type=int, default=3)
    parser.add_argument("--patterns", type=int, default=30, help="candidate patterns shown")
    args = parser.parse_args()

    import adversarial

    from omnicanal.settings import get_settings
    from omnicanal.warehouse import connect

    data = adversarial.generate(args.people, seed=args.seed)
    person_of = {f"{row[1]}:{row[0]}": person for person, row in data.rows}
    tags_of = {
        f"{row[1]}:{row[0]}": tags for (_, row), tags in zip(data.rows, data.tags, strict=True)
    }
    schema = f"identity_bench_adversarial_{args.people}"
    with connect(get_settings()) as conn:
        rec = {
            num: {
                "key": key,
                "cluster": cl,
                "component": co,
                "name": name,
                "source": src,
                "keys": dict(zip(AGREEING, keys, strict=True)),
            }
            for num, key, cl, co, name, src, *keys in conn.execute(
                f"""select r.record_num, r.record_key, c.cluster_num, d.component_num,
                           r.full_name_key, r.source, {", ".join("r." + k for k in AGREEING)}
                    from "{schema}".int_identity__records r
                    join "{schema}".int_identity__clusters c using (record_num)
                    join "{schema}".int_identity__deterministic_components d using (record_num)"""
            )
        }
        candidates = {
            (a, b): levels
            for a, b, levels in conn.execute(
                f"select record_num_a, record_num_b, levels"
                f' from "{schema}".int_identity__fuzzy_candidates'
            )
        }
        pairs = {
            (a, b): (weight, match)
            for a, b, weight, match in conn.execute(
                f"""select record_num_a, record_num_b, match_weight, is_match
                    from "{schema}".int_identity__fuzzy_pairs"""
            )
        }
        shared_values = defaultdict(set)
        for num, vtype, label, linkable, guard in conn.execute(
            f"""select i.record_num, i.identifier_type, i.identifier_label, v.is_linkable, v.guard
                from "{schema}".int_identity__identifiers i
                join "{schema}".int_identity__identifier_values v using (value_id)"""
        ):
            shared_values[num].add((vtype, label, linkable, guard))
    for r in rec.values():
        r["person"] = person_of[r["key"]]
        r["tags"] = tags_of[r["key"]]

    by_person = defaultdict(list)
    by_cluster = defaultdict(list)
    for num, r in rec.items():
        by_person[r["person"]].append(num)
        by_cluster[r["cluster"]].append(num)

    missed: Counter = Counter()
    missed_detail: Counter = Counter()
    never_agreeing: Counter = Counter()
    examples: dict[str, list] = defaultdict(list)
    for nums in by_person.values():
        for a, b in itertools.combinations(sorted(nums), 2):
            ra, rb = rec[a], rec[b]
            if ra["cluster"] == rb["cluster"]:
                continue
            common = {
                (t, lab, lk, g)
                for (t, lab, lk, g) in shared_values[a]
                if any(t == t2 and lab == lab2 for (t2, lab2, _, _) in shared_values[b])
            }
            if ra["component"] == rb["component"]:
                kind = "one_component_split_by_cluster_guard"
            elif (a, b) in pairs:
                weight, match = pairs[(a, b)]
                levels = candidates[(a, b)]
                if match:
                    kind = "fuzzy_linked_undone_by_cluster_guard"
                else:
                    kind = "over_threshold_stopped:" + (
                        stopped_by(levels, (ra["name"], rb["name"])) or "?"
                    )
                missed_detail[f"{kind} | {pattern(levels)}"] += 1
            elif (a, b) in candidates:
                kind = "candidate_under_threshold"
                missed_detail[f"{kind} | {pattern(candidates[(a, b)])}"] += 1
            else:
                kind = "never_a_candidate"
                agree = [k for k in AGREEING if ra["keys"][k] and ra["keys"][k] == rb["keys"][k]]
                never_agreeing["+".join(agree) or "nothing"] += 1
            if common:
                guards = sorted({f"{t}:{g}" for (t, _, lk, g) in common if not lk})
                kind += " (shares " + ",".join(sorted({t for (t, *_) in common}))
                kind += (" stopped by " + ",".join(guards)) if guards else ""
                kind += ")"
            missed[kind] += 1
            if len(examples[kind]) < args.examples:
                examples[kind].append((ra["key"], ra["name"], rb["key"], rb["name"]))

    false: Counter = Counter()
    false_links: Counter = Counter()
    for nums in by_cluster.values():
        people = Counter(rec[n]["person"] for n in nums)
        if len(people) < 2:
            continue
        n = len(nums)
        wrong = n * (n - 1) // 2 - sum(s * (s - 1) // 2 for s in people.values())
        mixed = defaultdict(set)
        for num in nums:
            mixed[rec[num]["component"]].add(rec[num]["person"])
        if any(len(p) > 1 for p in mixed.values()):
            types = Counter()
            for comp, persons in mixed.items():
                if len(persons) < 2:
                    continue
                members = [m for m in nums if rec[m]["component"] == comp]
                for a, b in itertools.combinations(members, 2):
                    if rec[a]["person"] != rec[b]["person"]:
                        for t, lab, lk, _ in shared_values[a]:
                            if lk and any(
                                t == t2 and lab == lab2 for (t2, lab2, _, _) in shared_values[b]
                            ):
                                types[t] += 1
            kind = "deterministic:" + ("+".join(sorted(types)) or "chained")
        else:
            kind = "fuzzy_links_only"
            for a, b in itertools.combinations(sorted(nums), 2):
                if (a, b) in pairs and pairs[(a, b)][1] and rec[a]["person"] != rec[b]["person"]:
                    false_links[pattern(candidates[(a, b)])] += 1
        false[kind] += wrong
        if len(examples[kind]) < args.examples:
            examples[kind].append(
                [(rec[m]["key"], rec[m]["name"], rec[m]["person"]) for m in nums][:6]
            )

    # what a rule on a levels pattern would cost or gain: every candidate pair's truth
    patterns: dict[str, Counter] = defaultdict(Counter)
    for (a, b), levels in candidates.items():
        same = rec[a]["person"] == rec[b]["person"]
        linked = (a, b) in pairs and pairs[(a, b)][1]
        patterns[pattern(levels)][("linked " if linked else "apart ") + str(same)] += 1
    top = sorted(patterns.items(), key=lambda kv: -sum(kv[1].values()))[: args.patterns]

    print(
        json.dumps(
            {
                "missed_pairs": dict(missed.most_common()),
                "missed_fuzzy_patterns": dict(missed_detail.most_common(25)),
                "never_a_candidate_agreeing_on": dict(never_agreeing.most_common(15)),
                "false_pairs": dict(false.most_common()),
                "false_fuzzy_link_patterns": dict(false_links.most_common(15)),
                "candidate_patterns_truth": {k: dict(v) for k, v in top},
                "examples": examples,
            },
            indent=1,
            default=str,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
