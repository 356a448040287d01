"""The load model (benchmarks/index_load.py): today's status index at its ceiling, the age index
strictly below half a partition everywhere at 100,000 messages per second, and the shard count
the template must be deployed with for it."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from types import ModuleType

from support.constants import ROOT

SCRIPT = ROOT / "benchmarks" / "index_load.py"


def load_model() -> ModuleType:
    spec = importlib.util.spec_from_file_location("index_load", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["index_load"] = module
    spec.loader.exec_module(module)
    return module


def test_at_100000_messages_per_second_every_partition_of_the_age_design_stays_below_500_writes():
    model = load_model()
    load = model.Workload(100_000, 5, 0.01, 0.01, 10)
    shards = model.shards_needed(load)
    rows = model.age_index(load, shards)
    assert {row.index for row in rows} == {
        "messages.byProjectAndStatus",
        "messages.byExecutionArn",
        "ageIndex (table, key id)",
        "ageIndex.byShardAndPosition",
    }
    assert all(row.hottest < 500 for row in rows), rows
    # 100,000 x (2 + 2 x 1%) = 202,000 writes per second: 404 shards would take exactly 500 each.
    assert shards == 405
    assert max(row.hottest for row in model.age_index(load, shards - 1)) == 500


def test_the_templates_default_shards_hold_about_15000_messages_per_second_and_no_more():
    model = load_model()
    default = model.template_shards()
    held = model.messages_per_second_held(default, 0.01)
    assert default == 64
    assert held == 15_841  # 64 x 500 / 2.02 = 15,841.6
    assert model.shards_needed(model.Workload(held, 5, 0.01, 0.01, 10)) <= default
    assert model.shards_needed(model.Workload(held + 1, 5, 0.01, 0.01, 10)) > default
    [*_, at_default] = model.age_index(model.Workload(100_000, 5, 0.01, 0.01, 10), default)
    assert model.verdict(at_default).startswith("NO: its writes throttled")


def test_todays_status_index_is_past_its_ceiling_long_before():
    model = load_model()
    assert round(model.ceiling_messages_per_second(5)) == 83  # 1,000 / (2 + 2 x 5)
    [processing, completed, *_] = model.today(model.Workload(1_000, 5, 0.01, 0.01, 10))
    assert processing.hottest == 12_000
    assert completed.hottest == 990


def test_updates_while_processing_cost_the_shards_nothing():
    model = load_model()
    quiet = model.shard_writes(model.Workload(1_000, 0, 0.01, 0.01, 10))
    busy = model.shard_writes(model.Workload(1_000, 50, 0.01, 0.01, 10))
    assert quiet == busy


def test_the_script_prints_every_rate_and_the_shards_needed():
    completed = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=60, check=True
    )
    lines = completed.stdout.splitlines()
    assert any(line.startswith("today's ceiling: 83 messages/s") for line in lines)
    for rate in ("10", "1,000", "100,000"):
        assert any(line.split()[:1] == [rate] for line in lines), rate
    assert "shards needed: age index 405 (deploy with AgeIndexShards=405);" in completed.stdout
    assert "AgeIndexShards (default 64) holds up to 15,841 messages/s" in completed.stdout
    at_scale = [line for line in lines if line.strip().startswith("100,000")]
    assert [line for line in at_scale if "ageIndex" in line and line.rstrip().endswith("yes")]
    assert all("ageIndex" not in line for line in at_scale if "NO" in line)
