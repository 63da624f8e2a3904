"""``create_app``: the lab's FastAPI application, one router per resource, all under ``/api``."""


import asyncio
import json
import logging
import time
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from aarlab.errors import UserError
from aarlab.server import schemas as m
from aarlab.server._auth import Authenticator, Principal, require
from aarlab.server._errors import BudgetSpent, Conflict, Corrupt, Forbidden, NotFound
from aarlab.server._service import Lab
from aarlab.server._settings import ServerSettings
from aarlab.store import SCHEMA_VERSION, Store
from aarlab.w2s.scoring import Score

log = logging.getLogger("aarlab.server")
ERROR_STATUS: dict[type[UserError], int] = {NotFound: 404, Conflict: 409, Forbidden: 403, BudgetSpent: 429,
                                            Corrupt: 500}
_bearer = HTTPBearer(auto_error=False, description="an agent token, the admin token or the viewer token")

# Routes whose bodies are uploads (predictions, snapshot tars) and may be as big as ``max_body_mb``.
UPLOAD_ROUTES = {("POST", "/api/eval/submissions"), ("POST", "/api/snapshots"), ("POST", "/api/admin/score")}
# Routes anyone may call, without a token.
PUBLIC_ROUTES = {"/api/health", "/api/openapi.json", "/api/docs", "/api/docs/oauth2-redirect"}
MAX_ID = m.MAX_ID
IdPath = Annotated[int, Path(ge=0, le=MAX_ID)]
IdQuery = Annotated[int, Query(ge=0, le=MAX_ID)]
ShortQuery = Annotated[str | None, Query(max_length=200)]


def _size(n: int) -> str:
    return f"{n / 1e6:g} MB" if n >= 1e6 else f"{n / 1e3:g} KB"


class BodyLimit:
    """Refuse request bodies over their route's limit with 413, before they are read into memory: uploads
    and admin routes may have ``max_bytes``, every other route (posts, replies, votes) ``small_bytes``."""

    def __init__(self, app, max_bytes: int, small_bytes: int):
        self.app = app
        self.max_bytes = max_bytes
        self.small_bytes = small_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"].rstrip("/")
        # Admin routes are authenticated before their body is read (AuthenticateFirst), and the verifier and
        # monitors send details and evidence of their own size: they keep the large limit.
        large = (scope["method"], path) in UPLOAD_ROUTES or path.startswith("/api/admin/")
        limit = self.max_bytes if large else self.small_bytes
        message = f"request body over the {_size(limit)} limit of {scope['method']} {scope['path'][:200]}"
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    too_big = int(value) > limit
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
                if seen > limit:
                    raise HTTPException(413, message)
            return msg

        return await self.app(scope, limited_receive, send)


def _bearer_token(scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() or None if scheme.lower() == "bearer" else None
    return None


class AuthenticateFirst:
    """Check the bearer token of every ``/api`` request before anything reads its body: a caller without a
    valid token (or an agent on an admin route) gets its 401/403 without the server parsing a byte of the
    body. The caller is left in ``scope["state"]["principal"]`` for the routes' dependencies."""

    def __init__(self, app, auth: Authenticator):
        self.app = app
        self.auth = auth

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/") or path in PUBLIC_ROUTES:
            return await self.app(scope, receive, send)
        token = _bearer_token(scope)
        try:
            who = self.auth.cached(token) or await run_in_threadpool(self.auth.identify, token)
            if path.startswith("/api/admin/"):
                require(who, "admin")
        except HTTPException as exc:
            # Closing the connection spares the server from draining a body it will never use.
            response = JSONResponse({"detail": exc.detail}, exc.status_code,
                                    headers={**(exc.headers or {}), "Connection": "close"})
            return await response(scope, receive, send)
        scope.setdefault("state", {})["principal"] = who
        return await self.app(scope, receive, send)


class SecurityHeaders:
    """Headers that keep pages from being framed, sniffed or leaking their URL, and a Content-Security-Policy
    that lets pages load scripts and styles only from this server (the dashboard vendors htmx and has no
    inline scripts; inline ``style`` attributes are allowed, htmx adds one for its indicators)."""

    CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
           "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
    HEADERS = [(b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"),
               (b"referrer-policy", b"no-referrer")]

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        # The interactive API docs load Swagger UI with an inline script: they get the other headers only.
        headers = self.HEADERS if scope["path"].startswith("/api/docs") else [
            *self.HEADERS, (b"content-security-policy", self.CSP.encode())]

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in headers if k not in have]
                message = dict(message, headers=[*message.get("headers", []), *extra])
            await send(message)

        return await self.app(scope, receive, send_with_headers)


class _CountedStream(StreamingResponse):
    """A streaming response that calls ``release`` however it ends (finished, client gone, server stopping)."""

    def __init__(self, *args, release, **kwargs):
        super().__init__(*args, **kwargs)
        self._release = release

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


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


def create_app(store: Store, settings: ServerSettings) -> FastAPI:
    """Build the lab server's API on ``store`` (``aarlab.app.create_lab_app`` adds the dashboard's pages)."""
    from aarlab import __version__ as version

    lab = Lab(store, settings)
    app = FastAPI(title="aarlab lab server", version=str(version), openapi_url="/api/openapi.json",
                  docs_url="/api/docs", redoc_url=None,
                  description="Evaluation on hidden labels, forum, code store, leaderboard and events of one lab.")
    app.state.lab = lab
    app.state.store = store
    app.state.settings = settings
    app.state.shutting_down = False
    open_streams: dict[str, int] = {}  # open event streams per token (the event loop's thread only)

    @app.exception_handler(UserError)
    async def _user_error(request: Request, exc: UserError):
        # The one place where the lab's domain errors become status codes.
        status = next((code for kind, code in ERROR_STATUS.items() if isinstance(exc, kind)), 400)
        retry = getattr(exc, "retry_after", None)
        return JSONResponse({"detail": str(exc)}, status, headers={"Retry-After": str(retry)} if retry else None)

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
    async def caller(request: Request,
                     creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
        who = getattr(request.state, "principal", None)  # set by AuthenticateFirst
        return who if who is not None else lab.auth.identify(creds.credentials if creds else None)

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

    AgentName = Annotated[str, Path(max_length=64)]

    @admin.post("/agents/{name}/revoke")
    def revoke_agent(name: AgentName, who: Admin) -> m.AgentInfo:
        """Revoke the agent's token: its next request is a 401."""
        return lab.revoke_agent(name)

    @admin.post("/agents/{name}/token")
    def new_agent_token(name: AgentName, who: Admin,
                        token_ttl_s: Annotated[float | None, Query(gt=0, le=10 * 365 * 86400)] = None
                        ) -> m.AgentCredentials:
        """A fresh token for the agent (its old one stops working)."""
        return lab.new_agent_token(name, token_ttl_s)

    @admin.post("/tasks")
    def register_task(body: m.TaskRegister, who: Admin) -> m.TaskSummary:
        return lab.register_task(body.task_dir, body.name)

    @admin.get("/submissions")
    def admin_submissions(who: Admin, since_id: IdQuery = 0, task: ShortQuery = None,
                          limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> list[m.SubmissionRecord]:
        return lab.submission_records(since_id, task, limit)

    @admin.post("/score")
    def score_heldout(body: m.HeldoutScoreRequest, who: Admin) -> Score:
        return lab.score_heldout(body)

    @admin.get("/verifications")
    def list_verifications(who: Admin, status: m.VerificationStatus | None = None,
                           post_id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None
                           ) -> list[m.PendingVerification]:
        return lab.verifications(status, post_id)

    @admin.post("/verifications")
    def record_verification(body: m.VerificationUpdate, who: Admin) -> m.Verification:
        return lab.record_verification(body)

    @admin.post("/flags")
    def add_flag(body: m.FlagCreate, who: Admin) -> m.Flag:
        return lab.add_flag(body)

    @admin.get("/flags")
    def admin_flags(who: Admin, status: m.FlagStatus | None = None, agent: ShortQuery = None,
                    severity: m.Severity | None = None, detector: ShortQuery = None) -> list[m.Flag]:
        return lab.flags(status, agent, severity, detector)

    @admin.post("/flags/{flag_id}/resolve")
    def resolve_flag(flag_id: IdPath, body: m.FlagResolve, who: Admin) -> m.Flag:
        return lab.resolve_flag(who, flag_id, body)

    @api.get("/flags", tags=["flags"])
    def list_flags(who: Watcher, status: m.FlagStatus | None = None, agent: ShortQuery = None,
                   severity: m.Severity | None = None, detector: ShortQuery = None) -> list[m.Flag]:
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
    def my_submissions(who: AgentOnly, task: ShortQuery = None) -> list[m.SubmissionSummary]:
        return lab.my_submissions(who, task)

    @ev.get("/submissions/{submission_id}")
    def one_submission(submission_id: IdPath, who: Writer) -> m.SubmissionSummary:
        return lab.my_submissions(who, None, submission_id)[0]

    @ev.get("/budget")
    def budget(task: Annotated[str, Query(max_length=200)], who: AgentOnly) -> m.Budget:
        return lab.budget(who, task)

    # -- forum ---------------------------------------------------------------------------------------------
    forum = APIRouter(prefix="/api/forum", tags=["forum"])

    @forum.post("/posts")
    def create_post(body: m.PostCreate, who: Writer) -> m.Post:
        return lab.create_post(who, body)

    @forum.get("/posts")
    def list_posts(who: Reader, since: Annotated[float | None, Query(ge=0, le=1e11)] = None,
                   since_id: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
                   kind: ShortQuery = None, tag: ShortQuery = None, author: ShortQuery = None,
                   limit: Annotated[int, Query(ge=1, le=200)] = 50,
                   offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0) -> list[m.Post]:
        return lab.list_posts(since, since_id, kind, tag, author, limit, offset)

    @forum.get("/search")
    def search(who: Reader, q: Annotated[str, Query(min_length=1, max_length=500)],
               limit: Annotated[int, Query(ge=1, le=200)] = 20) -> list[m.Post]:
        return lab.search(q, limit)

    @forum.get("/posts/{post_id}")
    def get_post(post_id: IdPath, who: Reader) -> m.Post:
        return lab.get_post(post_id)

    @forum.post("/posts/{post_id}/replies")
    def reply(post_id: IdPath, body: m.ReplyCreate, who: Writer) -> m.Post:
        return lab.reply(who, post_id, body)

    @forum.post("/posts/{post_id}/votes")
    def vote(post_id: IdPath, body: m.VoteCreate, who: AgentOnly) -> m.VoteResult:
        return lab.vote(who, post_id, body.value)

    # -- snapshots -----------------------------------------------------------------------------------------
    snaps = APIRouter(prefix="/api/snapshots", tags=["snapshots"])
    tar_body = {"requestBody": {"required": True, "content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}}}}

    @snaps.post("", openapi_extra=tar_body)
    async def publish_snapshot(request: Request, who: AgentOnly,
                               message: Annotated[str, Query(max_length=2000)] = "",
                               parent: Annotated[str | None, Query(max_length=64)] = None) -> m.SnapshotInfo:
        raw = await request.body()
        return await run_in_threadpool(lab.publish_snapshot, who, raw, message, parent)

    @snaps.get("")
    def list_snapshots(who: Reader, author: ShortQuery = None, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                       offset: IdQuery = 0) -> list[m.SnapshotInfo]:
        return lab.snapshots(author, limit, offset)

    @snaps.get("/diff")
    def snapshot_diff(a: Annotated[str, Query(max_length=64)], b: Annotated[str, Query(max_length=64)],
                      who: Reader) -> m.SnapshotDiff:
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
    def leaderboard(who: Reader, task: ShortQuery = None,
                    sort: Annotated[str, Query(max_length=20)] = "final") -> m.Leaderboard:
        board = lab.leaderboard(who, task, sort)
        if who.role == "agent":  # not even the fields: monitors and quarantine are for the humans
            return JSONResponse(board.model_dump(mode="json", exclude={"entries": {"__all__": {"flags", "quarantined"}}}))
        return board

    @api.get("/events", tags=["events"], response_class=StreamingResponse)
    async def events(request: Request, who: Reader, kinds: ShortQuery = None,
                     last_event_id: Annotated[str | None, Header(max_length=40)] = None) -> StreamingResponse:
        """Server-sent events (``post``, ``submission``, ``leaderboard``, ``flag``, ``verification``).
        ``Last-Event-ID`` resumes after that event; without it the stream starts at new events. Agents get
        no flag events and no leaderboard events caused by flags; each token may hold ``max_event_streams``
        streams open at once (429 beyond)."""
        wanted = {k for k in (kinds or "").split(",") if k} or set(m.EVENT_KINDS)
        unknown = wanted - set(m.EVENT_KINDS)
        if unknown:
            raise UserError(f"unknown event kinds {sorted(unknown)} (known: {', '.join(m.EVENT_KINDS)})")
        if who.role == "agent":  # monitor findings are for humans
            wanted.discard("flag")
            if not wanted:
                raise HTTPException(403, "flag events are for the admin and viewer tokens")
        header = last_event_id
        if header:
            try:
                after = int(header)
            except ValueError:
                after = -1
            if not 0 <= after <= MAX_ID:
                raise UserError(f"Last-Event-ID must be an event id (0 to 2**53), got {header!r}")
        else:
            after = await run_in_threadpool(lab.last_event_id)
        stream_key = f"{who.role}:{who.name}"
        if open_streams.get(stream_key, 0) >= settings.max_event_streams:
            raise HTTPException(429, f"{settings.max_event_streams} event streams are already open with this token; "
                                     "close one first")
        open_streams[stream_key] = open_streams.get(stream_key, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                open_streams[stream_key] -= 1
                if not open_streams[stream_key]:
                    del open_streams[stream_key]

        hide_flags = who.role == "agent"

        async def stream():
            nonlocal after
            last_sent = time.monotonic()
            yield ": connected\n\n"
            while not app.state.shutting_down and not await request.is_disconnected():
                batch = await run_in_threadpool(lab.events_after, after, wanted)
                for ev_ in batch:
                    after = ev_.id
                    if hide_flags and ev_.data.get("change") == "flag":
                        continue  # a leaderboard change caused by a monitor's flag
                    payload = json.dumps({"data": ev_.data, "created": ev_.created})
                    yield f"id: {ev_.id}\nevent: {ev_.kind}\ndata: {payload}\n\n"
                    last_sent = time.monotonic()
                if not batch:
                    if time.monotonic() - last_sent > 15:
                        yield ": keep-alive\n\n"
                        last_sent = time.monotonic()
                    await asyncio.sleep(settings.events_poll_s)

        return _CountedStream(stream(), media_type="text/event-stream", release=release,
                              headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    for router in (api, admin, ev, forum, snaps):
        app.include_router(router)


    # Outermost last: timing, then headers, then authentication, then the body limit.
    app.add_middleware(BodyLimit, max_bytes=int(settings.max_body_mb * 1e6),
                       small_bytes=int(settings.max_small_body_kb * 1e3))
    app.add_middleware(AuthenticateFirst, auth=lab.auth)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(ServerTiming)
    return app


