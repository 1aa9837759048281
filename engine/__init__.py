"""Cairn's engine: storage and domain rules, in rooms by concern. `cairn.engine.open(path)`
is the one factory (datadir.py); it returns the `Engine` of one data directory.

Rooms, lowest first; a room imports only from rooms before it (and `errors`), never
from `cairn.app`, `cairn.tui`, `cairn.cli`, the SDK face `cairn`, litestar or textual:
  errors       CairnError and MLflow's error codes
  store/       the LMDB environment and its one writer, keys, codecs, interned names,
               blobs and the artifact tree, the appliance's identity, clocks
  query/       MLflow's filter and order_by grammar, page tokens and pages
  tracking/    experiments, runs, params, tags, metrics, datasets, run search
  loggedmodels/ MLflow 3's logged models and their search
  models/      MLmodel folders, signatures, ONNX conversion and verification, the predictor
  registry/    catalogs and schemas, models, versions, aliases, stages, lineage, the
               registration pipeline
  endpoints/   stored serving-endpoint configs and payload-log settings
  datadir      `Engine` and `open`: one data directory with every store above on it
  sdk/         the SDK's logic behind `import cairn`: Client, the fluent API, the
               registry client, model loading and logging, sklearn autologging
  bundles/     signed model bundles between appliances
DESIGN.md draws them; tests/test_import_graph.py holds the code to them.
"""
from cairn.engine.datadir import Engine, default_data_dir, open
from cairn.engine.errors import CairnError

__all__ = ["Engine", "open", "default_data_dir", "CairnError"]
