"""``create_app``: the lab's FastAPI application, one router per resource, all under ``/api``."""


import asyncio
import json
import logging
import time
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from aarlab.errors import UserError
from aarlab.server import schemas as m
from aarlab.server._auth import Principal, require
from aarlab.server._service import Lab
from aarlab.server._settings import ServerSettings
from aarlab.store import SCHEMA_VERSION, Store
from aarlab.w2s.scoring import Score

log = logging.getLogger("aarlab.server")
_bearer = HTTPBearer(auto_error=False, description="an agent token, the admin token or the viewer token")


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, before they are read into memory."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = f"request body over the {self.max_bytes / 1e6:g} MB limit"
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    return await JSONResponse({"detail": message}, 413, headers={"Connection": "close"})(scope, receive, send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(413, message)
            return msg

        return await self.app(scope, limited_receive, send)


class ServerTiming:
    """Add ``Server-Timing: app;dur=<ms>`` to every response: the time spent inside the app, from the
    request's arrival to the response's start (what the benchmark reports as server-side latency)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()

        async def timed_send(message):
            if message["type"] == "http.response.start":
                ms = (time.perf_counter() - started) * 1000
                message = dict(message, headers=[*message.get("headers", []), (b"server-timing", f"app;dur={ms:.3f}".encode())])
            await send(message)

        return await self.app(scope, receive, timed_send)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        kind = err.get("type", "")
        if kind == "json_invalid":
            ctx = err.get("ctx", {}) or {}
            return f"malformed JSON body: {ctx.get('error', err.get('msg'))}"
        if kind == "extra_forbidden" and loc and loc[-1] == "author":
            parts.append("'author' is not accepted: the author is always the owner of the token")
            continue
        if kind == "missing" and not loc:
            return "missing JSON body"
        parts.append(f"{'.'.join(loc) or 'body'}: {err.get('msg')}")
    return "; ".join(parts) or "invalid request"


def _mount_dashboard(app: FastAPI, store: Store, settings: ServerSettings) -> None:
    """Serve the dashboard's pages from this app when ``aarlab.dashboard.mount`` exists. A dashboard that
    fails to load costs the pages only, never the API the agents depend on."""
    try:
        from aarlab.dashboard import mount
    except ImportError:
        return
    except Exception as exc:  # noqa: BLE001 - a broken optional UI must not take the lab down
        log.warning("dashboard not mounted: %s", exc)
        return
    try:
        mount(app, store, settings)
    except Exception as exc:  # noqa: BLE001
        log.warning("dashboard not mounted: %s", exc)


def create_app(store: Store, settings: ServerSettings) -> FastAPI:
    """Build the lab server's app on ``store``; mounts the dashboard at ``/`` when it is installed."""
    from aarlab import __version__ as version

    lab = Lab(store, settings)
    app = FastAPI(title="aarlab lab server", version=str(version), openapi_url="/api/openapi.json",
                  docs_url="/api/docs", redoc_url=None,
                  description="Evaluation on hidden labels, forum, code store, leaderboard and events of one lab.")
    app.state.lab = lab
    app.state.store = store
    app.state.settings = settings
    app.state.shutting_down = False

    @app.exception_handler(UserError)
    async def _user_error(request: Request, exc: UserError):
        return JSONResponse({"detail": str(exc)}, 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        detail = exc.detail
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route {request.method} {request.url.path} (see /api/docs)"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        return JSONResponse({"detail": detail}, exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return JSONResponse({"detail": _validation_message(exc)}, 422)

    # Dependencies are async so that FastAPI runs them on the event loop: a sync dependency costs a
    # thread-pool round trip per request. Token lookups hit an in-memory cache after an agent's first call.
    async def caller(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
        return lab.auth.identify(creds.credentials if creds else None)

    def role(*roles: str):
        async def dependency(who: Annotated[Principal, Depends(caller)]) -> Principal:
            return require(who, *roles)
        return dependency

    Admin = Annotated[Principal, Depends(role("admin"))]
    AgentOnly = Annotated[Principal, Depends(role("agent"))]
    Writer = Annotated[Principal, Depends(role("agent", "admin"))]
    Reader = Annotated[Principal, Depends(role("agent", "admin", "viewer"))]
    Watcher = Annotated[Principal, Depends(role("admin", "viewer"))]

    api = APIRouter(prefix="/api")

    @api.get("/health", tags=["lab"])
    async def health() -> m.Health:
        return m.Health(version=str(version), schema_version=SCHEMA_VERSION, database=store.dialect)

    # -- admin ---------------------------------------------------------------------------------------------
    admin = APIRouter(prefix="/api/admin", tags=["admin"])

    @admin.post("/agents")
    def create_agent(body: m.AgentCreate, who: Admin) -> m.AgentCredentials:
        return lab.create_agent(body)

    @admin.get("/agents")
    def list_agents(who: Admin) -> list[m.AgentInfo]:
        return lab.agents()

    @admin.post("/tasks")
    def register_task(body: m.TaskRegister, who: Admin) -> m.TaskSummary:
        return lab.register_task(body.task_dir, body.name)

    @admin.get("/submissions")
    def admin_submissions(who: Admin, since_id: int = 0, task: str | None = None,
                          limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> list[m.SubmissionRecord]:
        return lab.submission_records(since_id, task, limit)

    @admin.post("/score")
    def score_heldout(body: m.HeldoutScoreRequest, who: Admin) -> Score:
        return lab.score_heldout(body)

    @admin.get("/verifications")
    def list_verifications(who: Admin, status: m.VerificationStatus | None = None,
                           post_id: int | None = None) -> list[m.PendingVerification]:
        return lab.verifications(status, post_id)

    @admin.post("/verifications")
    def record_verification(body: m.VerificationUpdate, who: Admin) -> m.Verification:
        return lab.record_verification(body)

    @admin.post("/flags")
    def add_flag(body: m.FlagCreate, who: Admin) -> m.Flag:
        return lab.add_flag(body)

    @admin.get("/flags")
    def admin_flags(who: Admin, status: m.FlagStatus | None = None, agent: str | None = None,
                    severity: m.Severity | None = None, detector: str | None = None) -> list[m.Flag]:
        return lab.flags(status, agent, severity, detector)

    @admin.post("/flags/{flag_id}/resolve")
    def resolve_flag(flag_id: int, body: m.FlagResolve, who: Admin) -> m.Flag:
        return lab.resolve_flag(who, flag_id, body)

    @api.get("/flags", tags=["flags"])
    def list_flags(who: Watcher, status: m.FlagStatus | None = None, agent: str | None = None,
                   severity: m.Severity | None = None, detector: str | None = None) -> list[m.Flag]:
        return lab.flags(status, agent, severity, detector)

    # -- evaluation ----------------------------------------------------------------------------------------
    ev = APIRouter(prefix="/api/eval", tags=["eval"])

    @ev.get("/tasks")
    def tasks(who: Reader) -> list[m.TaskSummary]:
        return lab.tasks()

    @ev.post("/submissions")
    def submit(body: m.SubmissionCreate, who: AgentOnly) -> m.SubmissionResult:
        return lab.submit(who, body)

    @ev.get("/submissions")
    def my_submissions(who: AgentOnly, task: str | None = None) -> list[m.SubmissionSummary]:
        return lab.my_submissions(who, task)

    @ev.get("/submissions/{submission_id}")
    def one_submission(submission_id: int, who: Writer) -> m.SubmissionSummary:
        return lab.my_submissions(who, None, submission_id)[0]

    @ev.get("/budget")
    def budget(task: str, who: AgentOnly) -> m.Budget:
        return lab.budget(who, task)

    # -- forum ---------------------------------------------------------------------------------------------
    forum = APIRouter(prefix="/api/forum", tags=["forum"])

    @forum.post("/posts")
    def create_post(body: m.PostCreate, who: Writer) -> m.Post:
        return lab.create_post(who, body)

    @forum.get("/posts")
    def list_posts(who: Reader, since: float | None = None, since_id: int | None = None,
                   kind: str | None = None, tag: str | None = None, author: str | None = None,
                   limit: Annotated[int, Query(ge=1, le=200)] = 50,
                   offset: Annotated[int, Query(ge=0)] = 0) -> list[m.Post]:
        return lab.list_posts(since, since_id, kind, tag, author, limit, offset)

    @forum.get("/search")
    def search(who: Reader, q: Annotated[str, Query(min_length=1, max_length=500)],
               limit: Annotated[int, Query(ge=1, le=200)] = 20) -> list[m.Post]:
        return lab.search(q, limit)

    @forum.get("/posts/{post_id}")
    def get_post(post_id: int, who: Reader) -> m.Post:
        return lab.get_post(post_id)

    @forum.post("/posts/{post_id}/replies")
    def reply(post_id: int, body: m.ReplyCreate, who: Writer) -> m.Post:
        return lab.reply(who, post_id, body)

    @forum.post("/posts/{post_id}/votes")
    def vote(post_id: int, body: m.VoteCreate, who: AgentOnly) -> m.VoteResult:
        return lab.vote(who, post_id, body.value)

    # -- snapshots -----------------------------------------------------------------------------------------
    snaps = APIRouter(prefix="/api/snapshots", tags=["snapshots"])
    tar_body = {"requestBody": {"required": True, "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}}}}

    @snaps.post("", openapi_extra=tar_body)
    async def publish_snapshot(request: Request, who: AgentOnly,
                               message: Annotated[str, Query(max_length=2000)] = "",
                               parent: str | None = None) -> m.SnapshotInfo:
        raw = await request.body()
        return await run_in_threadpool(lab.publish_snapshot, who, raw, message, parent)

    @snaps.get("")
    def list_snapshots(who: Reader, author: str | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                       offset: Annotated[int, Query(ge=0)] = 0) -> list[m.SnapshotInfo]:
        return lab.snapshots(author, limit, offset)

    @snaps.get("/diff")
    def snapshot_diff(a: str, b: str, who: Reader) -> m.SnapshotDiff:
        return lab.diff(a, b)

    @snaps.get("/{snapshot_id}.tar", response_class=Response)
    def snapshot_tar(snapshot_id: str, who: Reader) -> Response:
        return Response(lab.snapshot_tar(snapshot_id), media_type="application/x-tar",
                        headers={"Content-Disposition": f'attachment; filename="{snapshot_id}.tar"'})

    @snaps.get("/{snapshot_id}/files/{path:path}", response_class=Response)
    def snapshot_file(snapshot_id: str, path: str, who: Reader) -> Response:
        return Response(lab.snapshot_file(snapshot_id, path), media_type="application/octet-stream")

    @snaps.get("/{snapshot_id}")
    def snapshot_info(snapshot_id: str, who: Reader) -> m.SnapshotInfo:
        return lab.snapshot_info(snapshot_id)

    # -- leaderboard and events ----------------------------------------------------------------------------
    @api.get("/leaderboard", tags=["leaderboard"])
    def leaderboard(who: Reader, task: str | None = None, sort: str = "verified") -> m.Leaderboard:
        return lab.leaderboard(who, task, sort)

    @api.get("/events", tags=["events"], response_class=StreamingResponse)
    async def events(request: Request, who: Reader, kinds: str | None = None) -> StreamingResponse:
        """Server-sent events (``post``, ``submission``, ``leaderboard``, ``flag``, ``verification``).
        ``Last-Event-ID`` resumes after that event; without it the stream starts at new events."""
        wanted = {k for k in (kinds or "").split(",") if k} or set(m.EVENT_KINDS)
        unknown = wanted - set(m.EVENT_KINDS)
        if unknown:
            raise UserError(f"unknown event kinds {sorted(unknown)} (known: {', '.join(m.EVENT_KINDS)})")
        if who.role == "agent":  # monitor findings are for humans
            wanted.discard("flag")
            if not wanted:
                raise HTTPException(403, "flag events are for the admin and viewer tokens")
        header = request.headers.get("last-event-id")
        try:
            after = int(header) if header else await run_in_threadpool(lab.last_event_id)
        except ValueError:
            raise UserError(f"Last-Event-ID must be an event id, got {header!r}") from None

        async def stream():
            nonlocal after
            last_sent = time.monotonic()
            yield ": connected\n\n"
            while not app.state.shutting_down and not await request.is_disconnected():
                batch = await run_in_threadpool(lab.events_after, after, wanted)
                for ev_ in batch:
                    after = ev_.id
                    payload = json.dumps({"data": ev_.data, "created": ev_.created})
                    yield f"id: {ev_.id}\nevent: {ev_.kind}\ndata: {payload}\n\n"
                    last_sent = time.monotonic()
                if not batch:
                    if time.monotonic() - last_sent > 15:
                        yield ": keep-alive\n\n"
                        last_sent = time.monotonic()
                    await asyncio.sleep(settings.events_poll_s)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    for router in (api, admin, ev, forum, snaps):
        app.include_router(router)

    _mount_dashboard(app, store, settings)

    app.add_middleware(BodyLimit, max_bytes=int(settings.max_body_mb * 1e6))
    app.add_middleware(ServerTiming)
    return app


