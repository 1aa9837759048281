"""Model bundles (engine/bundles/transfer.py) between two real data directories: a version is
exported from one appliance and imported into another with its run, lineage and origin;
damaged, truncated, unsigned or foreign-signed bundles are refused before anything is
written."""
from __future__ import annotations

import io
import os
import pickle
import stat
import tarfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import cairn
from cairn import engine
from cairn.engine.bundles.archive import read_bundle, write_bundle
from cairn.engine.bundles.signing import (
    generate_key,
    load_private_key,
    own_key_info,
    parse_public_key,
    read_public_key_arg,
    trust_key,
    trusted_keys,
    untrust_key,
)
from cairn.engine.bundles.transfer import export_bundle, import_bundle, open_bundle, signing_key
from cairn.engine.errors import CairnError
from cairn.engine.registry.registration import ORIGINAL_TAG, SKIP_ORIGINAL
from cairn.engine.store.appliance import appliance_identity
from cairn.engine.tracking.entities import ViewType

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def iris():
    X, y = load_iris(return_X_y=True)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def source(tmp_path_factory, iris):
    """A source appliance with a key and `iris` version 1 (alias champion, Staging)
    registered from a run with params, a metric history, a dataset and a git commit."""
    data = tmp_path_factory.mktemp("source") / "data"
    X, y = iris
    cairn.set_tracking_dir(data)
    try:
        cairn.set_experiment("iris-exp")
        with cairn.start_run(run_name="logreg") as run:
            cairn.log_params({"C": "0.5", "max_iter": "300"})
            for step, loss in enumerate([0.9, 0.5, 0.3]):
                cairn.log_metric("loss", loss, step=step)
            cairn.log_metric("accuracy", 0.97)
            cairn.log_input(cairn.make_dataset(X, targets=y, name="iris"), context="training")
            cairn.set_tags({"mlflow.source.git.commit": COMMIT, "mlflow.source.name": "train.py"})
            clf = LogisticRegression(max_iter=300, C=0.5).fit(X, y)
            cairn.sklearn.log_model(clf, name="model", input_example=X[:5], registered_model_name="iris")
    finally:
        cairn.set_tracking_dir(None)
    eng = engine.open(data)
    eng.registry.set_registered_model_alias("iris", "champion", "1")
    eng.registry.transition_model_version_stage("iris", "1", "Staging", False)
    eng.registry.set_model_version_tag("iris", "1", "team", "ml")
    generate_key(data)
    yield data, run.info.run_id, clf
    eng.close()


@pytest.fixture(scope="module")
def bundles(source, tmp_path_factory):
    """(signed bundle, unsigned bundle) of iris@champion."""
    data = source[0]
    out = tmp_path_factory.mktemp("bundles")
    eng = engine.open(data)
    try:
        signed = export_bundle(eng, "models:/iris@champion", out / "iris.cairn", key=signing_key(data, None))
        unsigned = export_bundle(eng, "models:/iris/1", out / "iris-unsigned.tar")
    finally:
        eng.close()
    assert signed.signer and not unsigned.signer
    return Path(signed.path), Path(unsigned.path)


@pytest.fixture
def dest(tmp_path):
    eng = engine.open(tmp_path / "dest")
    yield eng
    eng.close()


def trust_source(dest, source) -> None:
    trust_key(dest.path, "plant-a", read_public_key_arg(str(source[0] / "keys" / "signing.pub")))


def snapshot(eng) -> tuple:
    """Everything an import could write: models, versions, experiments, runs, staged files."""
    models = eng.registry.search_registered_models(None, 1000, None, None).items
    exps = eng.tracking.all_experiments()
    runs = eng.tracking.search_runs([e.experiment_id for e in exps], None, ViewType.ALL, 1000).items
    staged = list(eng.artifacts.walk("bundles"))
    return [m.name for m in models], [e.name for e in exps], [r.info.run_id for r in runs], staged


def predict(data_dir: Path, uri: str, X) -> np.ndarray:
    cairn.set_tracking_dir(data_dir)
    try:
        out = cairn.load_model(uri).predict(X)
    finally:
        cairn.set_tracking_dir(None)
    return np.asarray(out[0] if isinstance(out, (list, tuple)) else out)


def rewrite(src: Path, dst: Path, change) -> Path:
    """A copy of tar `src` with `change(name, data) -> data | None` applied per member
    (None drops it), in the same order."""
    out = io.BytesIO()
    with tarfile.open(src) as tin, tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tout:
        for member in tin:
            data = change(member.name, tin.extractfile(member).read())
            if data is None:
                continue
            member.size = len(data)
            tout.addfile(member, io.BytesIO(data))
    dst.write_bytes(out.getvalue())
    return dst


def flip_byte(data: bytes) -> bytes:
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]


# -- export and import -------------------------------------------------------------------
def test_export_import_keeps_lineage_origin_and_predictions(source, bundles, dest, iris):
    src_data, run_id, clf = source
    signed, _ = bundles
    X, _y = iris
    trust_source(dest, source)
    before = len(snapshot(dest)[2])
    res = import_bundle(dest, signed)
    assert (res.name, res.version, res.status, res.existing) == ("iris", "1", "READY", False)
    assert res.run_id == run_id and res.run_created
    assert res.signer.trusted_as == "plant-a" and not res.signer.warning

    mv = dest.registry.get_model_version("iris", "1")
    assert mv.run_id == run_id and mv.signature is not None
    assert mv.description == "" and mv.tags_dict["team"] == "ml"
    assert mv.source == f"runs:/{run_id}/model"  # the recreated run holds the files too
    lin = dest.registry.get_lineage("iris", "1")
    assert lin.run_name == "logreg" and lin.experiment_name == "iris-exp"
    assert lin.params == {"C": "0.5", "max_iter": "300"}
    assert lin.metrics == {"loss": 0.3, "accuracy": 0.97}
    assert lin.git_commit == COMMIT and lin.source_name == "train.py"
    [ds] = lin.datasets
    assert ds.name == "iris" and ds.context == "training"
    assert ds.digest == cairn.make_dataset(X, targets=iris[1], name="iris").digest
    src_id = appliance_identity(src_data).appliance_id
    assert src_id != appliance_identity(dest.path).appliance_id
    assert lin.origin["appliance_id"] == src_id
    assert (lin.origin["name"], lin.origin["version"]) == ("main.default.iris", "1")
    assert lin.origin["stage"] == "Staging" and lin.origin["aliases"] == "champion"
    assert lin.origin["bundle_digest"] == f"sha256:{res.digest}"
    assert lin.origin["signer"].endswith("(plant-a)")
    history = dest.tracking.get_metric_history(run_id, "loss").items
    assert [(m.step, m.value) for m in history] == [(0, 0.9), (1, 0.5), (2, 0.3)]
    assert len(snapshot(dest)[2]) == before + 1

    there = predict(src_data, "models:/iris@champion", X)
    here = predict(dest.path, "models:/iris/1", X)
    np.testing.assert_array_equal(here, there)
    np.testing.assert_array_equal(here, clf.predict(X))


def test_importing_again_reports_the_existing_version(source, bundles, dest):
    signed, unsigned = bundles
    first = import_bundle(dest, unsigned)
    assert first.signer.warning and "unsigned" in first.signer.warning
    state = snapshot(dest)
    again = import_bundle(dest, unsigned)
    # Another bundle of the same version (signed, exported separately) is the same version.
    other = import_bundle(dest, signed)
    for res in (again, other):
        assert res.existing and (res.name, res.version) == ("iris", first.version)
    assert snapshot(dest) == state


def test_import_under_another_name_reuses_the_run(source, bundles, dest):
    _, unsigned = bundles
    run_id = source[1]
    import_bundle(dest, unsigned)
    runs_before = snapshot(dest)[2]
    dest.registry.create_catalog("prod")
    dest.registry.create_schema("prod.vision")
    res = import_bundle(dest, unsigned, name="prod.vision.iris_clf", alias="live")
    assert res.name == "prod.vision.iris_clf" and res.version == "1" and not res.run_created
    assert dest.registry.get_model_version_by_alias("prod.vision.iris_clf", "live").run_id == run_id
    assert snapshot(dest)[2] == runs_before  # one run, two versions


def test_import_into_a_missing_schema_is_refused_before_writing(bundles, dest):
    state = snapshot(dest)
    with pytest.raises(CairnError, match="nowhere.models"):
        import_bundle(dest, bundles[1], name="nowhere.models.iris")
    assert snapshot(dest) == state


def test_a_bundle_coming_home_is_the_version_it_came_from(source, bundles):
    eng = engine.open(source[0])
    try:
        res = import_bundle(eng, bundles[0])  # no trusted keys on the source: a warning
    finally:
        eng.close()
    assert res.existing and (res.name, res.version) == ("iris", "1")


def test_export_refuses_what_is_not_a_ready_version(source, tmp_path):
    eng = engine.open(source[0])
    try:
        with pytest.raises(CairnError, match="models:/"):
            export_bundle(eng, f"runs:/{source[1]}/model", tmp_path / "x.tar")
        with pytest.raises(CairnError, match="nosuch"):
            export_bundle(eng, "models:/nosuch@champion", tmp_path / "x.tar")
    finally:
        eng.close()
    assert not (tmp_path / "x.tar").exists()


def test_inspect_verifies_without_writing(bundles, dest):
    contents = open_bundle(dest.path, bundles[0])
    assert contents.meta.full_name == "main.default.iris" and contents.meta.aliases == ["champion"]
    assert contents.run is not None and contents.run.experiment_name == "iris-exp"
    paths = {f.path for f in contents.bundle.manifest.files}
    assert {"model/model.onnx", "model/MLmodel", "version.json", "lineage.json", "run.msgpack"} <= paths
    assert contents.signer.signed and contents.signer.warning
    assert snapshot(dest)[0] == []


def test_gzip_bundles_read_too(source, tmp_path, dest):
    eng = engine.open(source[0])
    try:
        out = export_bundle(eng, "models:/iris/Staging", tmp_path / "iris.tar.gz")
    finally:
        eng.close()
    with open(out.path, "rb") as f:
        assert f.read(2) == b"\x1f\x8b"
    assert import_bundle(dest, out.path).status == "READY"


def test_a_version_without_a_run_travels_too(tmp_path, dest):
    """A version registered from an .onnx file has no run: the files come alone."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import Ridge

    X = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    ridge = Ridge().fit(X, X @ [1.0, 2.0, 3.0])
    onnx_file = tmp_path / "ridge.onnx"
    onnx_file.write_bytes(to_onnx(ridge, X[:1], target_opset=17).SerializeToString())
    src = engine.open(tmp_path / "src")
    try:
        src.registry.create_registered_model("ridge")
        mv = src.registry.create_model_version("ridge", str(onnx_file))
        assert src.registrar.wait("ridge", mv.version, 120).status == "READY"
        out = export_bundle(src, "models:/ridge/latest", tmp_path / "ridge.tar")
    finally:
        src.close()
    res = import_bundle(dest, out.path)
    assert res.status == "READY" and not res.run_id and not res.run_created
    mv = dest.registry.get_model_version("ridge", res.version)
    assert mv.source.startswith("mlflow-artifacts:/bundles/") and not mv.run_id
    np.testing.assert_allclose(predict(dest.path, "models:/ridge/1", X).ravel(), ridge.predict(X), rtol=1e-4)


# -- refusals ----------------------------------------------------------------------------
def test_a_changed_byte_in_the_model_is_refused(bundles, dest, tmp_path):
    bad = rewrite(bundles[1], tmp_path / "bad.tar",
                  lambda n, d: flip_byte(d) if n.endswith("model/model.onnx") else d)
    state = snapshot(dest)
    with pytest.raises(CairnError, match=r"model/model\.onnx does not match its manifest digest"):
        import_bundle(dest, bad)
    assert snapshot(dest) == state


def test_a_changed_manifest_is_refused(bundles, dest, tmp_path):
    def lie(name, data):
        """One digest in the manifest changed (to cover a swapped file, say)."""
        if not name.endswith("manifest.json"):
            return data
        i = data.index(b'"sha256": "') + len(b'"sha256": "')
        return data[:i] + (b"0" if data[i:i + 1] != b"0" else b"1") + data[i + 1:]

    for bundle, why in ((bundles[0], "signature does not match"), (bundles[1], "does not match its manifest")):
        changed = rewrite(bundle, tmp_path / f"changed-{bundle.name}", lie)
        with pytest.raises(CairnError, match=why):
            import_bundle(dest, changed)
    swapped = rewrite(bundles[0], tmp_path / "dropped.tar",
                      lambda n, d: None if n.endswith("lineage.json") else d)
    with pytest.raises(CairnError, match="lineage.json listed in the manifest is missing"):
        import_bundle(dest, swapped)
    assert snapshot(dest)[0] == []


def test_truncated_and_foreign_files_are_refused(bundles, dest, tmp_path):
    data = bundles[0].read_bytes()
    with tarfile.open(bundles[0]) as tf:
        last = tf.getmembers()[-1]
    # Inside the manifest, mid-archive, inside the last file (a tar ends with zero
    # padding: cutting only that leaves a whole bundle, which is fine).
    for cut in (1024 + 512, len(data) // 2, last.offset_data + last.size // 2):
        short = tmp_path / f"short-{cut}.tar"
        short.write_bytes(data[:cut])
        with pytest.raises(CairnError, match="truncated") as err:
            import_bundle(dest, short)
        assert str(short) in err.value.message
    junk = tmp_path / "junk.tar"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(CairnError, match="not a tar archive"):
        import_bundle(dest, junk)
    empty = tmp_path / "other.tar"
    with tarfile.open(empty, "w") as tf:
        tf.add(__file__, arcname="something/else.py")
    with pytest.raises(CairnError, match="outside cairn-bundle"):
        read_bundle(empty)
    with pytest.raises(CairnError, match="does not exist"):
        import_bundle(dest, tmp_path / "missing.tar")
    # Sizes are checked from the tar headers before anything is read into memory.
    whole = read_bundle(bundles[0])
    read_bundle(bundles[0], max_bytes=sum(len(d) for d in whole.files.values()) + 4096)
    with pytest.raises(CairnError, match="more than 1,000 bytes of files"):
        read_bundle(bundles[0], max_bytes=1000)
    assert snapshot(dest)[0] == []


class _LeavesAMark:
    """Unpickled, it creates the directory `path`: proof that the pickle ran."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return os.mkdir, (self.path,)


def test_an_unverified_bundle_is_registered_without_running_its_pickle(source, bundles, dest, tmp_path, iris):
    """Only a trusted signer's bundle may have its original model loaded (to re-verify
    the conversion): any other import registers the ONNX model alone."""
    X, _y = iris
    marker = tmp_path / "the-pickle-ran"
    bundle = read_bundle(bundles[1])
    (pkl,) = [p for p in bundle.files if p.endswith("model.pkl")]
    files = {**bundle.files, pkl: pickle.dumps(_LeavesAMark(marker))}
    unsigned = write_bundle(tmp_path / "unsigned.tar", bundle.manifest.origin, files)

    res = import_bundle(dest, unsigned.path)
    assert res.status == "READY" and res.signer.warning
    assert not marker.exists()
    mv = dest.registry.get_model_version("iris", res.version)
    assert mv.tags_dict[ORIGINAL_TAG] == SKIP_ORIGINAL
    np.testing.assert_array_equal(predict(dest.path, f"models:/iris/{res.version}", X), source[2].predict(X))

    # Signed by a key this appliance trusts: the original is loaded, so the pickle runs
    # (and, not being a scikit-learn model, fails the registration).
    trust_source(dest, source)
    signed = write_bundle(tmp_path / "signed.tar", bundle.manifest.origin, files, key=signing_key(source[0], None))
    with pytest.raises(CairnError, match="does not hold a scikit-learn model: it loaded as NoneType"):
        import_bundle(dest, signed.path, name="iris_signed")
    assert marker.exists()


def test_files_are_spooled_to_disk_and_removed(bundles, dest, tmp_path):
    """A bundle's files go to temporary files while they are hashed (a model of GBs is
    never held in memory), in the data directory's blob scratch space on import, and
    none is left behind by an import, a refusal or a closed bundle."""
    scratch = dest.path / "blobs" / "tmp"
    spool = tmp_path / "spool"
    spool.mkdir()
    bundle = read_bundle(bundles[0], spool_dir=spool)
    spooled = sorted(p.name for p in spool.iterdir())
    assert len(spooled) == len(bundle.manifest.files) and all(n.startswith("bundle-") for n in spooled)
    with bundle.open_file(next(p for p in bundle.files if p.endswith(".onnx"))) as f:
        assert f.read(8)  # streamed from its spooled copy
    bundle.close()
    bundle.close()  # idempotent
    assert list(spool.iterdir()) == []

    with tarfile.open(bundles[0]) as tf:
        last = tf.getmembers()[-1]
    truncated = tmp_path / "truncated.tar"  # inside its last file: every other one was spooled
    truncated.write_bytes(bundles[0].read_bytes()[: last.offset_data + last.size // 2])
    with pytest.raises(CairnError, match="truncated"):
        read_bundle(truncated, spool_dir=spool)
    assert list(spool.iterdir()) == []

    assert import_bundle(dest, bundles[1]).status == "READY"
    assert list(scratch.iterdir()) == []
    changed = rewrite(bundles[1], tmp_path / "changed.tar",
                      lambda name, data: flip_byte(data) if name.endswith(".onnx") else data)
    with pytest.raises(CairnError, match="does not match its manifest digest"):
        import_bundle(dest, changed)
    assert list(scratch.iterdir()) == []


def test_signature_policy_where_keys_are_trusted(source, bundles, dest, tmp_path):
    other_dir = tmp_path / "other-appliance"
    other = generate_key(other_dir)
    trust_key(dest.path, "plant-b", parse_public_key(other.public_key))
    state = snapshot(dest)
    with pytest.raises(CairnError, match="is signed by SHA256:.*not a trusted key"):
        import_bundle(dest, bundles[0])  # signed by plant A, only plant B is trusted
    with pytest.raises(CairnError, match="unsigned, and this appliance accepts only"):
        import_bundle(dest, bundles[1])
    assert snapshot(dest) == state
    trust_source(dest, source)
    assert import_bundle(dest, bundles[0]).signer.trusted_as == "plant-a"


# -- keys and identity -------------------------------------------------------------------
def test_keys_generate_trust_list_untrust(tmp_path):
    data = tmp_path / "d"
    info = generate_key(data)
    key_file = data / "keys" / "signing.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert info.fingerprint.startswith("SHA256:") and own_key_info(data).public_key == info.public_key
    with pytest.raises(CairnError, match="--force"):
        generate_key(data)
    replaced = generate_key(data, force=True)
    assert replaced.public_key != info.public_key
    assert load_private_key(key_file) is not None

    raw = read_public_key_arg(str(data / "keys" / "signing.pub"))
    assert trust_key(data, "self", raw).fingerprint == replaced.fingerprint
    with pytest.raises(CairnError, match="already trusted as self"):
        trust_key(data, "again", raw)
    with pytest.raises(CairnError, match="Invalid key name"):
        trust_key(data, "../x", raw)
    with pytest.raises(CairnError, match="Not an ed25519 public key"):
        parse_public_key("not a key")
    assert [k.name for k in trusted_keys(data)] == ["self"]
    untrust_key(data, "self")
    assert trusted_keys(data) == []
    with pytest.raises(CairnError, match="No trusted key named self"):
        untrust_key(data, "self")


def test_appliance_identity_is_stable(tmp_path):
    first = appliance_identity(tmp_path)
    assert len(first.appliance_id) == 32 and first.hostname
    assert appliance_identity(tmp_path).appliance_id == first.appliance_id
