"""MLflow's artifact proxy (/api/2.0/mlflow-artifacts/...) and the tracking-side listing
(/api/2.0/mlflow/artifacts/list), over the engine's ArtifactStore.

The 3.x client (mlflow/store/artifact/http_artifact_repo.py) talks to these routes when a
run's artifact URI is 'mlflow-artifacts:/<exp>/<run>/artifacts':
- upload: PUT .../artifacts/<path> with the file as the raw body (one request per file,
  whatever its size, unless multipart upload is switched on: see `MultipartRefusal`);
- download: GET .../artifacts/<path>, read as a stream;
- listing: GET .../artifacts?path=<dir>, answered with base names, as MLflow does.

Bodies never sit whole in memory. An upload is hashed and written to a blob by a worker
thread that takes chunks from the request as they arrive; a download is served from the
blob file in chunks.

Paths arrive percent-decoded once by the ASGI server; like MLflow (utils/uri._decode) we
decode until stable before `check_artifact_path`, so a double-encoded '..' is refused
too. A path only ever becomes an LMDB key, never a file-system path.
"""
from __future__ import annotations

import asyncio
import mimetypes
import posixpath
import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.response import File

from cairn.app.httperrors import error_response
from cairn.engine.errors import INTERNAL_ERROR, PERMISSION_DENIED, RESOURCE_DOES_NOT_EXIST, CairnError, invalid
from cairn.engine.governance.access import Access
from cairn.engine.store.artifacts import ArtifactStore, FileInfo, check_artifact_path
from cairn.engine.tracking.contract import TrackingStore

# An upload's own body limit (the app-wide one is for JSON, 16 MiB). Large enough for any
# model file; a bound all the same, so one request cannot fill the disk unchecked.
MAX_ARTIFACT_BODY = 64 * 1024**3
# Chunks in flight between the request stream and the writer thread. uvicorn hands the
# body over in pieces of at most 64 KiB, so this holds at most a few MiB per upload.
HANDOFF_DEPTH = 64
# Uploads block a thread each for their whole length (hashing, fsync, durable commit):
# their own pool, so they never starve the threads that sync handlers run on.
_UPLOAD_THREADS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="cairn-upload")

# MLflow's client falls back to a plain PUT only when the refusal's message starts with
# this text (mlflow.exceptions._UnsupportedMultipartUploadException.MESSAGE).
MULTIPART_UNSUPPORTED = "Multipart upload is not supported for the current artifact repository"
PRESIGNED_UNSUPPORTED = "Presigned download is not supported for the current artifact repository"
NOT_IMPLEMENTED = "NOT_IMPLEMENTED"
# Registered versions' own files (engine/registry/registration.py writes them through the engine,
# never through the proxy): immutable for clients, readable by everyone.
REGISTRY_PREFIX = "registry"

_END = object()
_ABORT = object()


class UploadAborted(Exception):
    """The request body ended badly (client gone, limit hit): the blob must not be kept."""


def client_path(raw: str | None, *, allow_empty: bool = False) -> str:
    """A client-supplied artifact path in normal form, or INVALID_PARAMETER_VALUE.

    Decoded until stable first (MLflow's `validate_path_is_safe` does the same), so
    '%2e%2e' and '%252e%252e' are both seen as '..'."""
    path = raw or ""
    for _ in range(10):
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    else:
        raise invalid(f"Invalid artifact path {raw!r}: too many levels of percent-encoding")
    return check_artifact_path(path, allow_empty=allow_empty)


ROUTE_ANCHOR = "/mlflow-artifacts/artifacts/"


def route_path(request: Request) -> str:
    """The artifact path of a proxy request: everything after the route's anchor.

    Taken from the undecoded ``raw_path``: the router rewrites ``scope["path"]`` with
    repeated slashes folded, which would turn '//etc/passwd' and '%2Fetc/passwd' into the
    harmless-looking 'etc/passwd'; we refuse those as absolute instead."""
    raw = request.scope.get("raw_path")
    full = unquote(raw.decode("utf-8", "surrogateescape")) if raw else request.scope["path"]
    at = full.find(ROUTE_ANCHOR)
    if at < 0:  # the router folded slashes inside the anchor itself ('artifacts//x' etc.)
        raise invalid(f"Invalid artifact request path {full!r}: repeated '/' in the route")
    return client_path(full[at + len(ROUTE_ANCHOR) :])


def refuse_registry_write(path: str) -> None:
    """Uploads and deletes under registry/ are refused (403, MLflow's PERMISSION_DENIED):
    a registered version's files must stay what was verified. `path` is already normal
    (no '..', no repeated '/'), so a prefix test cannot be dodged."""
    if path == REGISTRY_PREFIX or path.startswith(REGISTRY_PREFIX + "/"):
        raise CairnError(
            f"Artifact path '{path}' belongs to a registered model version: registered "
            "versions are immutable (register a new version instead)", PERMISSION_DENIED
        )


def _files(infos: list) -> dict:
    # MLflow's protobuf JSON leaves an empty repeated field out; the client reads
    # resp.json().get("files", []).
    return {"files": infos} if infos else {}


def _basenames(infos: list[FileInfo]) -> list[FileInfo]:
    return [FileInfo(path=posixpath.basename(i.path), is_dir=i.is_dir, file_size=i.file_size) for i in infos]


async def receive_into(request: Request, artifacts: ArtifactStore, path: str):
    """Stream the request body into `artifacts.put(path, ...)` on a worker thread.

    The event loop reads chunks and hands them over through a queue; a semaphore of
    `HANDOFF_DEPTH` credits, released by the thread as it takes each chunk, stops the
    loop from reading further ahead than that (the socket's flow control does the rest).
    If the body ends early the thread is told to abort, so BlobStore drops its temp file
    and no entry is written."""
    loop = asyncio.get_running_loop()
    credits = asyncio.Semaphore(HANDOFF_DEPTH)
    handoff: queue.SimpleQueue = queue.SimpleQueue()
    writer_done = threading.Event()

    def give_credit() -> None:
        try:
            loop.call_soon_threadsafe(credits.release)
        except RuntimeError:
            pass  # the loop is closed: the server is stopping and nobody waits

    def chunks() -> Iterator[bytes]:
        while True:
            chunk = handoff.get()
            if chunk is _END:
                return
            if chunk is _ABORT:
                raise UploadAborted
            give_credit()
            yield chunk

    def write():
        try:
            return artifacts.put(path, chunks())
        finally:
            writer_done.set()
            # Wake the loop if it waits for a credit: a writer that failed early
            # takes no more chunks.
            give_credit()

    writer = loop.run_in_executor(_UPLOAD_THREADS, write)
    try:
        async for chunk in request.stream():
            if not chunk:
                continue
            await credits.acquire()
            if writer_done.is_set():
                break
            handoff.put(chunk)
    except BaseException:
        handoff.put(_ABORT)
        # Not awaited (we may be cancelled): collect the writer's outcome so its
        # UploadAborted is never logged as unretrieved; the body's error is what counts.
        writer.add_done_callback(lambda f: f.cancelled() or f.exception())
        raise
    handoff.put(_END)
    return await writer


class ArtifactController(Controller):
    path = "/api/2.0"
    tags = ["artifacts"]

    # -- the artifact proxy -------------------------------------------------------------
    @get("/mlflow-artifacts/artifacts/{artifact_path:path}", sync_to_thread=False)
    def download(self, request: Request, artifacts: ArtifactStore, access: Access) -> File:
        path = route_path(request)
        access.artifact_path(path, write=False)
        try:
            entry = artifacts.get(path)
        except CairnError as err:
            if err.error_code == RESOURCE_DOES_NOT_EXIST and artifacts.list("", path):
                raise invalid(f"Artifact path refers to a directory, not a file: '{path}'") from None
            raise
        blob = artifacts.blobs.path(entry.sha256)
        if not blob.is_file():  # an entry without its content: say so, not a bare 500
            raise CairnError(f"Artifact {path!r} is missing its content (blob {entry.sha256})", INTERNAL_ERROR)
        name = posixpath.basename(path)
        # Attachment + nosniff, as MLflow sends them: a browser never renders an
        # artifact as a page of this origin.
        return File(
            path=blob,
            filename=name,
            media_type=mimetypes.guess_type(name)[0] or "application/octet-stream",
            content_disposition_type="attachment",
            headers={"X-Content-Type-Options": "nosniff"},
        )

    @put(
        "/mlflow-artifacts/artifacts/{artifact_path:path}",
        status_code=200,
        request_max_body_size=MAX_ARTIFACT_BODY,
    )
    async def upload(self, request: Request, artifacts: ArtifactStore, access: Access) -> dict:
        path = route_path(request)
        refuse_registry_write(path)
        access.artifact_path(path, write=True)
        await receive_into(request, artifacts, path)
        return {}

    @delete("/mlflow-artifacts/artifacts/{artifact_path:path}", status_code=200, sync_to_thread=True)
    def delete_artifact(self, request: Request, artifacts: ArtifactStore, access: Access) -> dict:
        # A missing path is not an error: MLflow's repositories delete what is there.
        path = route_path(request)
        refuse_registry_write(path)
        access.artifact_path(path, write=True)
        artifacts.delete(path)
        return {}

    @get("/mlflow-artifacts/artifacts", sync_to_thread=False)
    def list_proxy(self, artifacts: ArtifactStore, access: Access, path: str | None = None) -> dict:
        # MLflow answers with base names here; the client joins them onto what it asked for.
        rel = client_path(path, allow_empty=True)
        access.artifact_path(rel, write=False)
        return _files(_basenames(artifacts.list(rel)))

    # -- multipart upload and presigned download: refused so the client falls back -----
    @post("/mlflow-artifacts/mpu/{action:str}/{artifact_path:path}", status_code=501, sync_to_thread=False)
    def multipart(self, access: Access, action: str, artifact_path: str) -> Response:
        access.signed_in()  # refused to everyone alike
        return error_response(NOT_IMPLEMENTED, MULTIPART_UNSUPPORTED, 501)

    @get("/mlflow-artifacts/presigned/{artifact_path:path}", sync_to_thread=False)
    def presigned(self, access: Access, artifact_path: str) -> Response:
        access.signed_in()
        return error_response(NOT_IMPLEMENTED, PRESIGNED_UNSUPPORTED, 501)

    # -- the tracking-side listing --------------------------------------------------------
    @get("/mlflow/artifacts/list", sync_to_thread=False)
    def list_run(
        self,
        store: TrackingStore,
        access: Access,
        run_id: str | None = None,
        run_uuid: str | None = None,
        path: str | None = None,
        page_token: str | None = None,
    ) -> dict:
        rid = run_id or run_uuid
        if not rid:
            raise invalid("Missing value for required parameter 'run_id'")
        access.run(rid)
        rel = client_path(path, allow_empty=True)
        run = store.get_run(rid)
        # Paths relative to the run's artifact root, as MLflow's proxied listing gives
        # them; everything fits one page, so no next_page_token.
        return {"root_uri": run.info.artifact_uri, **_files(store.list_artifacts(rid, rel or None))}

