"""Reverse ETL: push dbt-defined segments to the channels' marketing tools.

A sync is declared by an analyst as a dbt exposure (see :mod:`.definitions`); the
engine (:mod:`.engine`) diffs the sync model against a ledger of what the
destination holds (:mod:`.ledger`) and sends only inserts, changes and removals.
"""
