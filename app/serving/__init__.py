"""Model serving: registered ONNX versions answering MLflow's scoring protocol over HTTP.

The pipeline of one request (DESIGN.md, "Serving"):

    ASGI route (invocations.py, no framework work per request)
      -> scoring.parse_request: the body (dataframe_split, dataframe_records, instances,
         inputs, CSV) decoded with msgspec into columns or tensors, checked against the
         served version's signature and turned into ONNX feeds (engine.models.predictor)
      -> router.Router.choose: the served entity (weighted split, sticky by a routing
         key, an optional shadow copy)
      -> batcher.Batcher.submit: the entity's bounded queue; a worker thread takes what
         is queued (up to max_batch_rows, no wait window unless max_wait_ms), runs one
         ONNX Runtime call and splits the outputs back per request; a full queue is
         Overloaded -> 429 with Retry-After
      -> scoring.format_response: {"predictions": ...}
      -> payloadlog (sampled, bounded, written off the request path in batches) and
         metrics (Prometheus text at /metrics), never blocking the reply.

Modules: scoring (protocol), runtime (sessions: CUDA when it really loads, else CPU;
load/unload for scale-to-zero), batcher (queues and workers), router (traffic split),
metrics (counters and histograms), payloadlog (inference tables writer), manager (the
live endpoints: builds them from the endpoint store, follows alias moves and config
updates without dropping a request in flight), invocations (the ASGI routes of one
served model), modelserver (`cairn models serve -m URI`: one model on its own uvicorn,
no endpoint store; MLflow folders are prepared once and kept under DATA/cache).
Endpoint configuration and payload logs are stored by the engine (engine/endpoints/lmdbstore.py).
"""
