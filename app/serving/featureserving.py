"""Feature serving (Databricks' feature spec endpoints): a served entity of type
FEATURE_SPEC answers the scoring protocol with feature values instead of predictions.

A request's rows carry the lookup keys (in any JSON table format); each row comes back
as an object of its keys and the spec's features, filled from the online store by the
same FeatureFiller a model endpoint uses: `{"outputs": [{...}, ...]}`. There is no model,
session or batcher; a lookup is one LMDB snapshot, fast enough to run on the event loop.
"""
from __future__ import annotations

from typing import Any

import msgspec

from cairn.app.serving.scoring import ScoringError, parse_rows
from cairn.engine.endpoints.contract import ServedEntity
from cairn.engine.errors import CairnError
from cairn.engine.features.fill import FeatureFiller

_ENCODE = msgspec.json.Encoder().encode


class LiveFeatureEntity:
    """One served feature spec, with the attributes the manager reads of a LiveEntity."""

    batcher = None  # nothing queued: no batcher figures on /metrics

    def __init__(self, endpoint: str, spec: ServedEntity, engine):
        self.spec = spec
        self.name = spec.name
        self.filler = FeatureFiller.from_json(engine.features.feature_spec_json(spec.entity_name), engine.features)
        self.model_name = spec.entity_name
        self.version = ""
        self.load_s = 0.0
        keys = self.filler.key_columns
        self.columns = keys + [c for c in self.filler.spec.feature_columns if c not in keys]
        self.headers = [(b"served-model-name", spec.name.encode()),
                        (b"x-cairn-feature-spec", spec.entity_name.encode())]

    def answer(self, content_type: str | None, body: bytes) -> tuple[bytes, str]:
        """(the response body, the client_request_id) or a ScoringError (a 400 naming
        the missing key or column)."""
        rows, request_id = parse_rows(content_type, body)
        if len(rows) > self.spec.max_queue_rows:
            raise ScoringError(400, "INVALID_PARAMETER_VALUE",
                               f"At most {self.spec.max_queue_rows} rows per request, got {len(rows)}")
        try:
            filled = self.filler.fill(rows)
        except CairnError as exc:
            raise ScoringError(exc.http_status, exc.error_code, exc.message) from None
        outputs: list[dict[str, Any]] = [{c: r.get(c) for c in self.columns} for r in filled]
        return _ENCODE({"outputs": outputs}), request_id or ""

    def close(self) -> None:
        pass
