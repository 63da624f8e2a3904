"""The dashboard's pages, served by the lab server's own FastAPI app (``mount(app, store, settings)``).

Access: a viewer token (read-only) or the admin token, given once as ``?token=`` (the page then sets a
signed session cookie and redirects to the same URL without the token), or as a bearer header. No token: a
401 page with a form to enter one. The session cookie is ``role.expiry.HMAC`` keyed with the server's
session secret (``<run_dir>/session_secret``, 0600) over the role, the expiry and the role's current token,
so it expires after ``session_max_age_s``, cannot be forged, and dies when that token is changed. Admin actions (clearing or confirming a flag) need the admin
token and are refused otherwise.

Live updates: ``/live`` is a server-sent event stream of the lab's events (the same ``events`` table
``/api/events`` streams), read with the dashboard cookie because a browser's ``EventSource`` cannot send a
bearer header. ``static/dashboard.js`` turns each event into a ``lab:<kind>`` DOM event, and htmx
elements re-fetch their fragment on the events they care about (``hx-trigger="lab:submission from:body"``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import threading
import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from aarlab.dashboard import _content, _data, _results
from aarlab.dashboard._plots import PlotCache
from aarlab.dashboard._render import STATIC, env
from aarlab.dashboard._runfiles import read_notebook, read_state
from aarlab.dashboard._transcripts import shared_index, timeline_after, timeline_page, transcript_files

COOKIE = "aarlab_dashboard"
SESSION_MAX_AGE_S = 12 * 3600
MAX_ID = 2**53
IdPath = Annotated[int, PathParam(ge=0, le=MAX_ID)]
TRANSCRIPT_PAGE = 40
FORUM_PAGE = 30
MAX_TOOL_OUTPUT = 20_000
MAX_FILE_VIEW = _content.MAX_FILE_VIEW


class _LoginRequired(Exception):
    pass


class _Forbidden(Exception):
    pass


class _StripToken(Exception):
    def __init__(self, url: str, cookie: str):
        self.url = url
        self.cookie = cookie


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Dashboard:
    """The state one mounted dashboard holds: the store, the run dir, token digests and caches."""

    def __init__(self, store, settings: Any):
        self.store = store
        self.settings = settings
        run_dir = getattr(settings, "run_dir", None)
        self.run_dir = Path(run_dir) if run_dir else None
        self.plots = PlotCache()
        self.lab = None  # the server's service object, when mounted in its app: one write path for flags
        self.session_max_age_s = int(getattr(settings, "session_max_age_s", None) or SESSION_MAX_AGE_S)
        self._session_key = self._load_session_key(settings)
        self._memo_lock = threading.Lock()
        self._memo_key: tuple | None = None
        self._memo: dict[Any, Any] = {}

    def memo(self, key: Any, compute):
        """``compute()`` once per change of the lab's data: every open tab re-fetches its fragments on each
        event, and they all get the same leaderboard from one computation."""
        signature = _data.data_signature(self.store)
        with self._memo_lock:
            if signature != self._memo_key:
                self._memo_key, self._memo = signature, {}
            if key in self._memo:
                return self._memo[key]
        value = compute()
        with self._memo_lock:
            if signature == self._memo_key:
                self._memo[key] = value
        return value

    def warm(self) -> None:
        """Scan every transcript into the shared index (a long run's first scan takes seconds)."""
        index = shared_index()
        for path in transcript_files(self.run_dir).values():
            try:
                index.records(path)
            except OSError:
                continue

    def resolve_flag(self, flag_id: int, action: str, note: str | None) -> dict[str, Any] | None:
        """Clear or confirm a flag as the admin; the updated flag row, or None when there is no such flag."""
        if self.lab is not None and hasattr(self.lab, "resolve_flag"):
            from fastapi import HTTPException

            from aarlab.server import Principal
            from aarlab.server.schemas import FlagResolve

            try:
                self.lab.resolve_flag(Principal("admin", "admin (dashboard)"), flag_id,
                                      FlagResolve(action=action, note=note))
            except HTTPException as exc:
                if exc.status_code == 404:
                    return None
                raise
            return _data.flag(self.store, flag_id)
        return _data.resolve_flag(self.store, flag_id, action, note, resolver="admin (dashboard)")

    def _tokens(self) -> dict[str, str]:
        # Read from the settings on every request, so a token rotated on the settings object takes effect.
        out = {}
        for role, attr in (("admin", "admin_token"), ("viewer", "viewer_token")):
            token = getattr(self.settings, attr, None)
            if token:
                out[role] = _digest(str(token))
        return out

    def _load_session_key(self, settings: Any) -> bytes:
        secret = getattr(settings, "session_secret", None)
        if not secret and self.run_dir is not None:
            from aarlab.server import read_or_create_secret

            secret = read_or_create_secret(self.run_dir / "session_secret")
        # Without a run dir, sessions last as long as this process.
        return (secret or secrets.token_urlsafe(32)).encode()

    def role_of_digest(self, digest: str | None) -> str | None:
        if not digest:
            return None
        for role, expected in self._tokens().items():
            if hmac.compare_digest(digest, expected):
                return role
        return None

    def _session_mac(self, role: str, expires: int, token_digest: str) -> str:
        message = f"{role}.{expires}.{token_digest}".encode()
        return hmac.new(self._session_key, message, hashlib.sha256).hexdigest()

    def new_session(self, role: str) -> str:
        """A session cookie value for ``role``, valid for ``session_max_age_s``."""
        expires = int(time.time()) + self.session_max_age_s
        return f"{role}.{expires}.{self._session_mac(role, expires, self._tokens()[role])}"

    def role_of_session(self, cookie: str | None) -> str | None:
        """The role a session cookie grants, or None when it is malformed, forged, expired or its token changed."""
        role, _, rest = (cookie or "").partition(".")
        expires_text, _, mac = rest.partition(".")
        token_digest = self._tokens().get(role)
        if token_digest is None or not expires_text.isdigit() or len(expires_text) > 12:
            return None
        expires = int(expires_text)
        if expires <= time.time():
            return None
        return role if hmac.compare_digest(mac, self._session_mac(role, expires, token_digest)) else None

    def role(self, request: Request) -> str:
        """The caller's role (``admin`` | ``viewer``), or raise to send them to the login page."""
        token = request.query_params.get("token")
        if token:
            role = self.role_of_digest(_digest(token))
            if role is None:
                raise _LoginRequired()
            # Keep the token out of the address bar, history and logs: a session cookie replaces it.
            params = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            url = request.url.path + (("?" + urlencode(params)) if params else "")
            raise _StripToken(url, self.new_session(role))
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            role = self.role_of_digest(_digest(auth[7:].strip()))
            if role:
                return role
        role = self.role_of_session(request.cookies.get(COOKIE))
        if role is None:
            raise _LoginRequired()
        return role


def _render(template: str, request: Request, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = env().get_template(template).render(request=request, path=request.url.path, **context)
    return HTMLResponse(html, status_code=status_code)


def _page(template: str, request: Request, dash: Dashboard, role: str, **context: Any) -> HTMLResponse:
    return _render(template, request, role=role, is_admin=role == "admin", **context)


def _int(value: Any, default: int, lo: int = 1, hi: int = 1_000_000) -> int:
    try:
        return min(max(int(value), lo), hi)
    except (TypeError, ValueError):
        return default


def build_router(dash: Dashboard) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    store = dash.store

    @router.get("/", response_class=HTMLResponse)
    def overview_page(request: Request):
        role = dash.role(request)
        return _page("overview.html", request, dash, role, **_overview_context(dash))

    @router.get("/_partials/overview", response_class=HTMLResponse)
    def overview_partial(request: Request):
        role = dash.role(request)
        return _page("_overview_body.html", request, dash, role, **_overview_context(dash))

    def leaderboard_body(sort: str, direction: str, task: str) -> tuple[str, dict[str, Any]]:
        # The table is the same for every viewer until the data changes: render it once per change, since
        # every open tab re-fetches it on every submission.
        sort = sort if sort in _results.SORTS else "final"
        direction = "asc" if direction == "asc" else "desc"

        def render():
            context = _leaderboard_context(dash, sort, direction, task)
            return env().get_template("_leaderboard_body.html").render(**context), context

        return dash.memo(("leaderboard-html", sort, direction, task), render)

    @router.get("/leaderboard", response_class=HTMLResponse)
    def leaderboard_page(request: Request, sort: str = "final", dir: str = "desc", task: str = ""):
        role = dash.role(request)
        body, context = leaderboard_body(sort, dir, task)
        return _page("leaderboard.html", request, dash, role, body=Markup(body), task=context["task"],
                     tasks=context["tasks"], sort=context["sort"], dir=context["dir"])

    @router.get("/_partials/leaderboard", response_class=HTMLResponse)
    def leaderboard_partial(request: Request, sort: str = "final", dir: str = "desc", task: str = ""):
        dash.role(request)
        return HTMLResponse(leaderboard_body(sort, dir, task)[0])

    @router.get("/plots", response_class=HTMLResponse)
    def plots_page(request: Request):
        role = dash.role(request)
        return _page("plots.html", request, dash, role, plots=dash.plots.get(store, dash.run_dir))

    @router.get("/_partials/plots", response_class=HTMLResponse)
    def plots_partial(request: Request):
        role = dash.role(request)
        return _page("_plots_body.html", request, dash, role, plots=dash.plots.get(store, dash.run_dir))

    @router.get("/plots/{name}.svg")
    def plot_svg(request: Request, name: str):
        dash.role(request)
        plots = dash.plots.get(store, dash.run_dir)
        if name not in plots:
            return _not_found(request, dash, f"no plot called {name!r}")
        return Response(plots[name], media_type="image/svg+xml")

    @router.get("/forum", response_class=HTMLResponse)
    def forum_page(request: Request, kind: str = "", tag: str = "", q: str = "", author: str = "", page: int = 1):
        role = dash.role(request)
        page = _int(page, 1)
        rows, total = _content.posts(store, kind=kind or None, tag=tag or None, author=author or None,
                                  query=q or None, limit=FORUM_PAGE, offset=(page - 1) * FORUM_PAGE)
        pages = max(1, -(-total // FORUM_PAGE))
        params = {k: v for k, v in (("kind", kind), ("tag", tag), ("q", q), ("author", author)) if v}
        return _page("forum.html", request, dash, role, posts=rows, total=total, page=page, pages=pages,
                     facets=dash.memo("facets", lambda: _content.forum_facets(store)), kind=kind, tag=tag, q=q, author=author,
                     query_string=urlencode(params))

    @router.get("/forum/posts/{post_id}", response_class=HTMLResponse)
    def post_page(request: Request, post_id: IdPath):
        role = dash.role(request)
        item = _content.post(store, post_id)
        if item is None:
            return _not_found(request, dash, f"no post {post_id}")
        return _page("post.html", request, dash, role, post=item)

    @router.get("/agents/{name}", response_class=HTMLResponse)
    def agent_page(request: Request, name: str, page: int | None = None):
        role = dash.role(request)
        files = transcript_files(dash.run_dir)
        row = _data.agent_by_name(store, name)
        if row is None and name not in files:
            return _not_found(request, dash, f"no agent {name!r}")
        view = next(iter(_data.agents(store, dash.run_dir, only=name)), None)
        health = _data.run_health(dash.run_dir)
        if view is not None and health.process_gone and view.state in ("running", "restarting"):
            view.state = _data.PROCESS_GONE
        timeline = timeline_page(files[name], page, TRANSCRIPT_PAGE) if name in files else None
        context = dict(agent=view, name=name, timeline=timeline, health=health, max_output=MAX_TOOL_OUTPUT,
                       notebook=read_notebook(dash.run_dir, name),
                       submissions=_data.agent_submissions(store, row["id"]) if row else [],
                       posts=_data.agent_posts(store, row["id"]) if row else [],
                       flags=_data.agent_flags(store, row["id"]) if row else [],
                       jobs=_data.agent_jobs(dash.run_dir, name, alive=not health.process_gone))
        return _page("agent.html", request, dash, role, **context)

    @router.get("/_partials/agents/{name}/tail", response_class=HTMLResponse)
    def agent_tail(request: Request, name: str, after: int = 0):
        after = min(max(after, 0), MAX_ID)
        role = dash.role(request)
        files = transcript_files(dash.run_dir)
        if name not in files:
            return HTMLResponse("", status_code=404)
        tail = timeline_after(files[name], after, limit=TRANSCRIPT_PAGE)
        return _page("_timeline_tail.html", request, dash, role, name=name, tail=tail, max_output=MAX_TOOL_OUTPUT)

    @router.get("/snapshots", response_class=HTMLResponse)
    def snapshots_page(request: Request, author: str = "", page: int = 1):
        role = dash.role(request)
        page = _int(page, 1)
        rows = _content.snapshots(store, author=author or None, limit=100, offset=(page - 1) * 100)
        return _page("snapshots.html", request, dash, role, snapshots=rows, author=author, page=page)

    @router.get("/snapshots/{snapshot_id}", response_class=HTMLResponse)
    def snapshot_page(request: Request, snapshot_id: str, file: str = "", against: str = ""):
        role = dash.role(request)
        row = _content.snapshot(store, snapshot_id)
        if row is None:
            return _not_found(request, dash, f"no snapshot {snapshot_id}")
        files = _content.manifest_files(row)
        context: dict[str, Any] = dict(snap=row, files=files, tree=_content.tree_rows(files), file=file, against=against, content=None,
                                       binary=False, truncated=False, diff=None, other=None, error=None,
                                       others=_content.snapshots(store, limit=100))
        if file or against:
            contents = _content.snapshot_files(store, row["id"])
            if contents is None:
                context["error"] = "the snapshot's archive is missing from the store"
            elif file:
                data = contents.get(file)
                if data is None:
                    context["error"] = f"no file {file!r} in this snapshot"
                elif not _content.is_text(data):
                    context["binary"] = True
                else:
                    context["truncated"] = len(data) > MAX_FILE_VIEW
                    context["content"] = data[:MAX_FILE_VIEW].decode("utf-8", "replace")
            if against and contents is not None:
                other_id = row["parent_id"] if against == "parent" else against
                other = _content.snapshot(store, other_id) if other_id else None
                if other is None:
                    context["error"] = ("this snapshot has no parent" if against == "parent"
                                        else f"no snapshot {against}")
                else:
                    other_files = _content.snapshot_files(store, other["id"])
                    if other_files is None:
                        context["error"] = "the other snapshot's archive is missing from the store"
                    else:
                        context["other"] = other
                        context["diff"] = _content.diff_files(other_files, contents)
        return _page("snapshot.html", request, dash, role, **context)

    @router.get("/flags", response_class=HTMLResponse)
    def flags_page(request: Request, status: str = "open", page: int = 1):
        role = dash.role(request)
        page = _int(page, 1)
        rows, total = _data.flags(store, status=status if status != "all" else None, limit=100,
                                  offset=(page - 1) * 100)
        return _page("flags.html", request, dash, role, flags=rows, total=total, status=status, page=page,
                     message=None)

    @router.post("/flags/{flag_id}/resolve", response_class=HTMLResponse)
    async def resolve_flag(request: Request, flag_id: IdPath):
        role = dash.role(request)
        _check_same_origin(request)
        if role != "admin":
            raise _Forbidden()
        # A plain urlencoded form, parsed here so the dashboard needs no multipart parser.
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        action = (form.get("action") or [""])[0]
        note = (form.get("note") or [""])[0][:2000]
        if action not in ("clear", "confirm"):
            return HTMLResponse("action must be clear or confirm", status_code=400)
        updated = await run_in_threadpool(dash.resolve_flag, flag_id, action, note or None)
        if updated is None:
            return _not_found(request, dash, f"no flag {flag_id}")
        if request.headers.get("hx-request"):
            return _page("_flag.html", request, dash, role, f=updated)
        return RedirectResponse(f"/flags?status={updated['status']}", status_code=303)

    @router.get("/live")
    async def live(request: Request):
        dash.role(request)
        try:
            after = int(request.headers.get("last-event-id") or request.query_params.get("after") or -1)
        except ValueError:
            after = -1
        if not 0 <= after <= MAX_ID:
            after = await run_in_threadpool(_data.latest_event_id, store)
        return StreamingResponse(_event_stream(request, store, after), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @router.get("/logout")
    def logout():
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    return router


async def _event_stream(request: Request, store, after: int, poll_s: float = 0.5, heartbeat_s: float = 15.0):
    yield "retry: 2000\n\n"
    last_beat = time.monotonic()
    # The server sets ``shutting_down`` before it stops, so an open browser tab does not hold up its exit.
    while not getattr(request.app.state, "shutting_down", False) and not await request.is_disconnected():
        events = await run_in_threadpool(_data.events_after, store, after)
        for event in events:
            after = event["id"]
            payload = json.dumps({"id": event["id"], "kind": event["kind"], "data": event["data"]}, default=str)
            yield f"id: {event['id']}\nevent: lab\ndata: {payload}\n\n"
        if not events:
            if time.monotonic() - last_beat > heartbeat_s:
                last_beat = time.monotonic()
                yield ": keep-alive\n\n"
            await asyncio.sleep(poll_s)


def _check_same_origin(request: Request) -> None:
    # The cookie is SameSite=Strict already; refusing a foreign Origin as well costs nothing.
    origin = request.headers.get("origin")
    if origin and origin.rstrip("/") != f"{request.url.scheme}://{request.url.netloc}":
        raise _Forbidden()


def _not_found(request: Request, dash: Dashboard, message: str) -> HTMLResponse:
    return _render("error.html", request, status_code=404, title="Not found", message=message, role=None)


def _top(dash: Dashboard, task_id: int | None, n: int = 5) -> list[_results.LeaderRow]:
    return dash.memo(("leaderboard", task_id, "final", True),
                     lambda: _results.leaderboard(dash.store, task_id, "final", True))[:n]


def _overview_context(dash: Dashboard) -> dict[str, Any]:
    ov = _data.overview(dash.store, dash.run_dir)
    # The top results of each registered task, the run's own task first.
    boards = [{"task": task, "baselines": _data.baselines(task), "top": _top(dash, task["id"])} for task in ov.tasks]
    if not boards:
        boards = [{"task": None, "baselines": [], "top": _top(dash, None)}]
    recent, _ = _content.posts(dash.store, limit=8)
    return dict(ov=ov, boards=boards, top=boards[0]["top"], recent_posts=recent, baselines=boards[0]["baselines"])


def _leaderboard_context(dash: Dashboard, sort: str, direction: str, wanted_task: str = "") -> dict[str, Any]:
    sort = sort if sort in _results.SORTS else "final"
    descending = direction != "asc"
    all_tasks = _data.ordered_tasks(_data.tasks(dash.store), read_state(dash.run_dir))
    task = _data.pick_task(all_tasks, wanted_task)
    task_id = task["id"] if task else None
    rows = dash.memo(("leaderboard", task_id, sort, descending),
                     lambda: _results.leaderboard(dash.store, task_id, sort, descending))
    return dict(rows=rows, tasks=all_tasks,
                baselines=_data.baselines(task), task=task, sort=sort, dir="desc" if descending else "asc",
                task_qs=f"&task={task_id}" if task is not None and len(all_tasks) > 1 else "",
                submissions=_results.recent_submissions(dash.store, 20, task_id if len(all_tasks) > 1 else None))


def mount(app: FastAPI, store, settings: Any) -> Dashboard:
    """Serve the dashboard's pages at ``/`` of the lab server's ``app`` (its API stays under ``/api``)."""
    dash = Dashboard(store, settings)
    dash.lab = getattr(app.state, "lab", None)
    app.state.dashboard = dash

    async def login_required(request: Request, exc: Exception) -> HTMLResponse:
        bad = bool(request.query_params.get("token"))
        return _render("login.html", request, status_code=401, bad_token=bad, role=None)

    async def forbidden(request: Request, exc: Exception) -> HTMLResponse:
        return _render("error.html", request, status_code=403, title="Forbidden", role=None,
                       message="This action needs the admin token; you are signed in read-only.")

    async def strip_token(request: Request, exc: _StripToken) -> Response:
        response = RedirectResponse(exc.url, status_code=303)
        response.set_cookie(COOKIE, exc.cookie, max_age=dash.session_max_age_s, httponly=True, samesite="strict",
                            path="/", secure=request.url.scheme == "https")
        return response

    # Index the transcripts in the background, so the first page view of a long run does not pay for it.
    threading.Thread(target=dash.warm, name="dashboard-warm", daemon=True).start()
    app.add_exception_handler(_LoginRequired, login_required)
    app.add_exception_handler(_Forbidden, forbidden)
    app.add_exception_handler(_StripToken, strip_token)
    app.mount("/_static", StaticFiles(directory=str(STATIC)), name="dashboard-static")
    app.include_router(build_router(dash))
    return dash
