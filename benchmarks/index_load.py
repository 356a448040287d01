"""Write load on every index partition, today's design and the age index's, from a workload.

No AWS: arithmetic over a message's life, written down once per index below.

A message is written by the app and the agents: created `pending`; moved to `processing` (with
its `executionArn`); `updatedAt` changed U times while it works; then moved to `completed` or,
for the share that goes stale, left alone until the stale sweep moves it to `cancelled`.

DynamoDB's limits this rests on (docs/performance.md, "The age index: load model", cites the pages):
- one partition takes at most 1,000 write units per second (an item of up to 1 KB is one unit);
- an index entry whose key changes is a delete and a put (two writes); an update that changes a
  projected attribute rewrites the entry (one write); a conditional write whose condition fails
  still consumes a write unit;
- a partition key value with a sort key that only grows takes every write at its newest end, so
  split for heat cannot spread it: one key value is one partition's worth of writes at most;
- an index that cannot keep up throttles the writes of its base table.

Printed per index: writes per second into its hottest partition (key value), at each rate, and
whether that stays under half a partition (strictly below 500/s); then the shards the age index
needs, and the rate the template's `AgeIndexShards` default holds. The age index's shards are
counted as evenly loaded (a hash of the message id picks the shard); the other half of the
partition is the room for uneven hashing and bursts.

Run: .venv/bin/python benchmarks/index_load.py [--updates 5] [--stale-share 0.01]
     [--long-running-share 0.01] [--busiest-project 10] [--shards N] [--rates 10,1000,100000]
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from devstack.template import load_template  # noqa: E402

PARTITION_WRITES_PER_SECOND = 1_000
HEADROOM = 0.5  # stay under half a partition: room for bursts and uneven hashing
BUDGET = PARTITION_WRITES_PER_SECOND * HEADROOM


@dataclass(frozen=True)
class Workload:
    messages_per_second: float
    updates_per_message: float  # updatedAt changes while processing (status changes not counted)
    stale_share: float  # messages left in processing until the sweep cancels them
    long_running_share: float  # alive past the sweep's cutoff: their age entry is moved once
    busiest_project: float  # messages per second of the busiest project (capped by the total)


@dataclass(frozen=True)
class IndexLoad:
    """The writes per second into an index's hottest partition key value. For a key value that
    is one message or one execution, all its writes over the message's life are counted as if
    they came in one second (an upper bound: DynamoDB spreads such keys over partitions by hash)."""

    design: str
    index: str
    hottest: float
    spread: str  # what the hottest key value is


def today(load: Workload) -> list[IndexLoad]:
    m, u = load.messages_per_second, load.updates_per_message
    project = min(load.busiest_project, m)
    return [
        # Keyed by status: every processing message's entry is under one key value. Entering
        # (put), each updatedAt change (delete + put: the sort key moves), leaving (delete).
        IndexLoad("today", "messages.byStatusAndUpdatedAt", m * (2 + 2 * u), 'key "processing"'),
        # Every finished message stays under its final status: one put each, forever.
        IndexLoad("today", "messages.byStatusAndUpdatedAt", m * (1 - load.stale_share), 'key "completed"'),
        *_unchanged(project),
    ]


def age_index(load: Workload, shards: int) -> list[IndexLoad]:
    m, u = load.messages_per_second, load.updates_per_message
    project = min(load.busiest_project, m)
    gsi_writes = shard_writes(load)
    return [
        *_unchanged(project),
        # The maintained table, keyed by message id: a put on entering processing, a put if
        # absent on each updatedAt change while processing (a failed condition still costs a
        # write), a delete on leaving, a position move by the sweep for the long runners. Spread
        # over every partition by the id's hash: the hottest key is one message.
        IndexLoad("age index", "ageIndex (table, key id)", 2 + u + load.long_running_share, "one message"),
        # Its index keyed by (shard, position): a put on entering, a delete on leaving, a delete
        # and a put when the sweep moves a long runner's position. updatedAt changes write nothing.
        IndexLoad("age index", "ageIndex.byShardAndPosition", gsi_writes / shards, f"one of {shards} shards"),
    ]


def _unchanged(project: float) -> list[IndexLoad]:
    design = "both"
    return [
        # Keyed by project: created (put), pending -> processing (delete + put), processing ->
        # completed or cancelled (delete + put). updatedAt is not projected: changes write nothing.
        IndexLoad(design, "messages.byProjectAndStatus", project * 5, "busiest project"),
        # Sparse, one key value per execution: its put, and the rewrite when status changes.
        IndexLoad(design, "messages.byExecutionArn", 2, "one execution"),
    ]


def shard_writes(load: Workload) -> float:
    """Writes per second into the age index's shard index, all shards together."""
    return load.messages_per_second * (2 + 2 * load.long_running_share)


def shards_needed(load: Workload) -> int:
    """The fewest shards that keep every shard of the age index strictly below half a partition."""
    return math.floor(shard_writes(load) / BUDGET) + 1


def messages_per_second_held(shards: int, long_running_share: float) -> int:
    """The highest whole rate at which `shards` shards each stay strictly below half a partition."""
    return math.ceil(shards * BUDGET / (2 + 2 * long_running_share)) - 1


def template_shards() -> int:
    """`AgeIndexShards`' default in template.yaml: the shards a stack gets unless deployed with
    another value."""
    return int(load_template()["Parameters"]["AgeIndexShards"]["Default"])


def sharded_gsi_shards_needed(load: Workload) -> int:
    """The alternative: a write-sharded sparse index on the messages table itself, whose sort key
    moves on every updatedAt change (and which needs every writer to set a shard attribute)."""
    per_message = 2 + 2 * load.updates_per_message
    return math.floor(load.messages_per_second * per_message / BUDGET) + 1


def ceiling_messages_per_second(updates_per_message: float) -> float:
    """Today's ceiling: the messages per second at which the status-keyed index's processing
    partition reaches a whole partition's writes."""
    return PARTITION_WRITES_PER_SECOND / (2 + 2 * updates_per_message)


def verdict(row: IndexLoad) -> str:
    if row.hottest < BUDGET:
        return "yes"
    if row.hottest <= PARTITION_WRITES_PER_SECOND:
        return "NO"
    if row.design == "age index":
        return "NO: its writes throttled, the stream function falls behind"
    return "NO: at the ceiling, base table writes throttled"


def report(rates: list[float], base: Workload, fixed_shards: int | None) -> list[str]:
    default_shards = template_shards()
    lines = [
        f"workload: {base.updates_per_message:g} updatedAt changes per message while processing, "
        f"{base.stale_share:.1%} go stale, {base.long_running_share:.1%} run past the cutoff, "
        f"busiest project {base.busiest_project:g} messages/s; partition limit "
        f"{PARTITION_WRITES_PER_SECOND:,} writes/s, budget {BUDGET:,.0f}/s; age index shards "
        f"{fixed_shards or 'as needed'}",
        f"today's ceiling: {ceiling_messages_per_second(base.updates_per_message):,.0f} messages/s "
        "(byStatusAndUpdatedAt's processing partition at 1,000 writes/s)",
        "",
        f"{'messages/s':>11}  {'design':<9}  {'index':<30}  {'hottest partition':<22}  "
        f"{'writes/s':>12}  {'of limit':>8}  below 500/s",
    ]
    for rate in rates:
        load = Workload(
            rate,
            base.updates_per_message,
            base.stale_share,
            base.long_running_share,
            base.busiest_project,
        )
        shards = fixed_shards or shards_needed(load)
        for row in [*today(load)[:2], *age_index(load, shards)]:
            share = row.hottest / PARTITION_WRITES_PER_SECOND
            lines.append(
                f"{rate:>11,.0f}  {row.design:<9}  {row.index:<30}  {row.spread:<22}  "
                f"{row.hottest:>12,.1f}  {share:>8.1%}  {verdict(row)}"
            )
        needed = shards_needed(load)
        deploy = "the default will do" if needed <= default_shards else f"deploy with AgeIndexShards={needed}"
        lines.append(
            f"{'':>11}  shards needed: age index {needed:,} ({deploy}); a write-sharded index on the "
            f"messages table {sharded_gsi_shards_needed(load):,}; sweep reads {rate * base.stale_share:,.1f} "
            "stale messages/s"
        )
    held = messages_per_second_held(default_shards, base.long_running_share)
    lines += [
        "",
        f"template.yaml's AgeIndexShards (default {default_shards}) holds up to {held:,.0f} messages/s; "
        "above that, deploy with more (sam deploy --parameter-overrides AgeIndexShards=N, N as printed; "
        "raise only, never lower)",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--updates", type=float, default=5, help="updatedAt changes per message while processing"
    )
    parser.add_argument("--stale-share", type=float, default=0.01)
    parser.add_argument("--long-running-share", type=float, default=0.01)
    parser.add_argument("--busiest-project", type=float, default=10, help="messages/s of the busiest project")
    parser.add_argument("--shards", type=int, help="the age index's shards (default: as many as needed)")
    parser.add_argument("--rates", default="10,1000,100000", help="messages per second, comma-separated")
    parser.add_argument("--quick", action="store_true", help="the same table (it is arithmetic)")
    args = parser.parse_args()
    base = Workload(0, args.updates, args.stale_share, args.long_running_share, args.busiest_project)
    rates = [float(rate) for rate in args.rates.split(",")]
    print("\n".join(report(rates, base, args.shards)))


if __name__ == "__main__":
    main()
