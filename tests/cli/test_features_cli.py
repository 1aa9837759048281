"""`cairn features ...` as a user types it (separate processes): a table created from a
CSV, written from Parquet, read at a Delta version, published and looked up, shown with
its history, dropped; and errors as one clean line."""
from __future__ import annotations

import json

import pandas as pd
from clirun import assert_clean_error, cli

from cairn import engine
from cairn.features import FeatureEngineeringClient, FeatureLookup


def test_feature_tables_on_the_command_line(tmp_path):
    data = tmp_path / "data"
    first = tmp_path / "first.csv"
    pd.DataFrame({"cid": [1, 2], "ts": ["2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"],
                  "spend": [1.5, 2.5]}).to_csv(first, index=False)
    out = cli(data, "features", "create", "cust", "--primary-keys", "cid", "--timestamp-key", "ts", "--from",
              str(first), "--description", "spend", "--tag", "team=growth").stdout
    assert "created feature table cust (Delta version 1)" in out
    more = tmp_path / "more.parquet"
    pd.DataFrame({"cid": [3], "ts": pd.to_datetime(["2024-01-03"], utc=True), "spend": [3.5]}).to_parquet(more)
    assert "Delta version 2" in cli(data, "features", "write", "cust", str(more)).stdout
    rows = json.loads(cli(data, "features", "read", "cust", "--version", "1", "--format", "json").stdout)
    assert rows["total_rows"] == 2
    assert "3 keys online" in cli(data, "features", "publish", "cust").stdout
    assert "0 rows written" in cli(data, "features", "publish", "cust").stdout
    found = json.loads(cli(data, "features", "lookup", "cust", "3", "9").stdout)["results"]
    assert found == [{"key": [3], "features": {"spend": 3.5}}, {"key": [9], "features": None}]
    listed = json.loads(cli(data, "features", "list", "--json").stdout)["feature_tables"]
    assert [(t["name"], t["delta_version"], t["online_version"]) for t in listed] == [("cust", 2, 2)]
    shown = cli(data, "features", "show", "cust").stdout
    assert "timestamp key" in shown and "MERGE" in shown and "team=growth" in shown and "3 keys" in shown
    nope = str(first.with_name("nope.csv"))
    assert_clean_error(cli(data, "features", "write", "cust", nope, check=False), "no such file")
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"cid": [1], "ts": ["2024-01-01T00:00:00Z"], "spend": ["x"]}).to_csv(bad, index=False)
    assert_clean_error(cli(data, "features", "write", "cust", str(bad), check=False), "'spend'", "double", "string")
    assert_clean_error(cli(data, "features", "show", "nope", check=False), "'nope' does not exist")
    with engine.open(data) as eng:
        FeatureEngineeringClient(engine=eng).create_feature_spec("cust_spec", [FeatureLookup("cust", "cid")])
    cli(data, "endpoints", "create", "feats", "--feature-spec", "cust_spec")
    shown = json.loads(cli(data, "endpoints", "show", "feats", "--json").stdout)["endpoint"]["config"]
    assert shown["served_entities"][0]["entity_type"] == "FEATURE_SPEC"
    assert_clean_error(cli(data, "endpoints", "create", "x", "--feature-spec", "s", "--model", "m", check=False),
                       "--feature-spec or --model")
    assert "dropped" in cli(data, "features", "drop", "cust").stdout
    assert json.loads(cli(data, "features", "list", "--json").stdout)["feature_tables"] == []
