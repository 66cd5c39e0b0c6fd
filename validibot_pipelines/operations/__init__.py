"""The operations layer: code versions, lineage attributes, backfill policy, staleness, the nightly
re-validation, backfill submission, alerts and environments — generic over validator asset groups, so a
new validator's assets get all of it by being listed in ``definitions.py``."""
