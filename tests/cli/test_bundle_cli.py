"""`cairn keys ...` and `cairn bundle ...` run as separate processes, as a user types
them: a model trained and registered on one appliance (data directory) is exported,
inspected and imported on another; damaged and untrusted bundles are refused with one
`error:` line and nothing written."""
from __future__ import annotations

import io
import json
import stat
import tarfile
from pathlib import Path

import pytest
from clirun import assert_clean_error, cli, run_train_script, write_train_script

REPO = Path(__file__).resolve().parents[2]



@pytest.fixture(scope="module")
def plant_a(tmp_path_factory):
    """(data dir, run id, signed bundle of iris@champion) from a keyed appliance."""
    work = tmp_path_factory.mktemp("plant-a")
    data = work / "data"
    write_train_script(work, 'cairn.set_tag("mlflow.source.git.commit", "feedface" * 5)')
    run_id = run_train_script(work, str(data))
    cli(data, "models", "register", f"runs:/{run_id}/model", "iris")
    cli(data, "models", "alias", "iris", "champion", "1")
    keys = cli(data, "keys", "generate").stdout
    assert "fingerprint: SHA256:" in keys
    bundle = work / "iris.tar"
    exported = cli(data, "bundle", "export", "models:/iris@champion", "-o", str(bundle))
    assert "exported iris version 1" in exported.stdout and "signed by SHA256:" in exported.stdout
    assert exported.stderr == ""
    return data, run_id, bundle


def nothing_imported(data: Path) -> None:
    assert cli(data, "models", "list", "--json").stdout.strip() in ('{\n  "registered_models": []\n}', "{}")


def rewrite(src: Path, dst: Path, member_suffix: str) -> Path:
    """A copy of tar `src` with one byte of the member ending `member_suffix` changed."""
    out = io.BytesIO()
    with tarfile.open(src) as tin, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tout:
        for member in tin:
            data = tin.extractfile(member).read()
            if member.name.endswith(member_suffix):
                data = data[:-1] + bytes([data[-1] ^ 0x20])
            tout.addfile(member, io.BytesIO(data))
    dst.write_bytes(out.getvalue())
    return dst


def test_keys_commands(tmp_path):
    data = tmp_path / "data"
    out = cli(data, "keys", "generate").stdout
    assert "signing key written to" in out and "public key:  ed25519 " in out
    assert stat.S_IMODE((data / "keys" / "signing.key").stat().st_mode) == 0o600
    assert_clean_error(cli(data, "keys", "generate", check=False), "already exists", "--force")
    assert "fingerprint" in cli(data, "keys", "generate", "--force").stdout

    other = tmp_path / "other"
    cli(other, "keys", "generate")
    pub_line = (other / "keys" / "signing.pub").read_text().split()[1]
    assert "trusted plant-b: SHA256:" in cli(data, "keys", "trust", pub_line, "--name", "plant-b").stdout
    assert_clean_error(cli(data, "keys", "trust", "garbage", "--name", "x", check=False), "ed25519")
    listed = json.loads(cli(data, "keys", "list", "--json").stdout)
    assert listed["signing_key"]["fingerprint"].startswith("SHA256:")
    assert [k["name"] for k in listed["trusted_keys"]] == ["plant-b"]
    assert len(listed["appliance"]["appliance_id"]) == 32
    table = cli(data, "keys", "list").stdout
    assert "(this appliance)" in table and "plant-b" in table
    cli(data, "keys", "untrust", "plant-b")
    assert_clean_error(cli(data, "keys", "untrust", "plant-b", check=False), "No trusted key named plant-b")


def test_export_inspect_import_between_appliances(plant_a, tmp_path):
    src, run_id, bundle = plant_a
    dst = tmp_path / "plant-b"
    shown = json.loads(cli(dst, "bundle", "inspect", str(bundle), "--json").stdout)
    assert shown["manifest"]["origin"]["name"] == "main.default.iris"
    assert shown["version"]["aliases"] == ["champion"] and shown["signer"]["signed"]
    assert "signer" in cli(dst, "bundle", "inspect", str(bundle)).stdout

    cli(dst, "keys", "trust", str(src / "keys" / "signing.pub"), "--name", "plant-a")
    first = cli(dst, "bundle", "import", str(bundle), "--alias", "prod")
    assert "imported iris version 1: READY" in first.stdout
    assert f"run {run_id} recreated" in first.stdout and "trusted as plant-a" in first.stdout
    assert first.stderr == ""
    again = cli(dst, "bundle", "import", str(bundle))
    assert "already here: iris version 1" in again.stdout
    versions = json.loads(cli(dst, "models", "versions", "iris", "--json").stdout)["model_versions"]
    assert [v["version"] for v in versions] == ["1"] and versions[0]["aliases"] == ["prod"]

    lineage = json.loads(cli(dst, "models", "lineage", "iris", "1", "--json").stdout)["lineage"]
    assert lineage["run_id"] == run_id and lineage["experiment_name"] == "iris-exp"
    assert lineage["git_commit"] == "feedface" * 5 and lineage["params"]
    assert lineage["datasets"] and lineage["metrics"]
    assert lineage["origin"]["name"] == "main.default.iris" and lineage["origin"]["version"] == "1"
    runs = json.loads(cli(dst, "runs", "list", "--json").stdout)["runs"]
    assert [r["info"]["run_id"] for r in runs] == [run_id]
    tree = cli(dst, "models", "lineage", "iris", "1").stdout
    assert f"(appliance {lineage['origin']['appliance_id']}): main.default.iris version 1" in tree


def test_unsigned_export_and_import_warn(plant_a, tmp_path):
    src = plant_a[0]
    out = cli(src, "bundle", "export", "models:/iris/1", "-o", str(tmp_path / "u.tar"), "--unsigned")
    assert "warning: the bundle is unsigned" in out.stderr
    imported = cli(tmp_path / "dst", "bundle", "import", str(tmp_path / "u.tar"))
    assert "imported iris version 1: READY" in imported.stdout
    assert "warning: signature not checked" in imported.stderr
    assert "original model was not loaded" in imported.stderr
    assert_clean_error(cli(src, "bundle", "export", "iris", "-o", str(tmp_path / "x.tar"), check=False),
                       "models:/")


def test_damaged_and_untrusted_bundles_are_refused(plant_a, tmp_path):
    src, _, bundle = plant_a
    dst = tmp_path / "dst"
    tampered = rewrite(bundle, tmp_path / "tampered.tar", "model/model.onnx")
    assert_clean_error(cli(dst, "bundle", "import", str(tampered), check=False),
                       "model/model.onnx", "does not match its manifest digest")
    assert_clean_error(cli(dst, "bundle", "inspect", str(tampered), check=False), "model/model.onnx")
    forged = rewrite(bundle, tmp_path / "forged.tar", "manifest.json")
    assert_clean_error(cli(dst, "bundle", "import", str(forged), check=False), "signature does not match")
    short = tmp_path / "short.tar"
    short.write_bytes(bundle.read_bytes()[:4000])
    assert_clean_error(cli(dst, "bundle", "import", str(short), check=False), "truncated", str(short))
    junk = tmp_path / "junk.tar"
    junk.write_text("not a bundle\n" * 100)
    assert_clean_error(cli(dst, "bundle", "import", str(junk), check=False), "not a tar archive")

    cli(tmp_path / "stranger", "keys", "generate")
    cli(dst, "keys", "trust", str(tmp_path / "stranger" / "keys" / "signing.pub"), "--name", "stranger")
    assert_clean_error(cli(dst, "bundle", "import", str(bundle), check=False), "not a trusted key")
    unsigned = tmp_path / "unsigned.tar"
    cli(src, "bundle", "export", "models:/iris/1", "-o", str(unsigned), "--unsigned")
    assert_clean_error(cli(dst, "bundle", "import", str(unsigned), check=False), "unsigned", "trusted key")
    nothing_imported(dst)
    runs = json.loads(cli(dst, "runs", "list", "--json").stdout)
    assert not runs.get("runs")
