"""The agent's HTTP API (docs/agent-api.md; the models in api/agent.py): aiohttp routes over
the `Node`, a bearer token on every operation, one JSON error shape for every refusal."""

import asyncio
import hmac
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import structlog
from aiohttp import web
from pydantic import BaseModel, ValidationError

from activities.local import backup
from api import agent as api
from workers.agent.node import Conflict, Node, NodeFailed

log = structlog.get_logger()
M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Names as the backup catalogue makes them: no path separators, no leading dot.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")
_CHUNK = 1 << 20
_OUTCOMES_KEPT = 32


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        status=status, text=model.model_dump_json(by_alias=True), content_type="application/json"
    )


def _refusal(status: int, code: str, message: str) -> web.Response:
    return _json(api.ErrorAnswer(error=code, message=message), status)


async def _body(request: web.Request, model: type[M]) -> M:
    text = await request.text()
    return model.model_validate_json(text or "{}")


def make_app(node: Node, token: str, version: str) -> web.Application:
    backups: OrderedDict[str, api.BackupOutcome] = OrderedDict()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(api.PREFIX + "/"):
            offered = request.headers.get("Authorization", "").removeprefix("Bearer ")
            if not hmac.compare_digest(offered.encode(), token.encode()):
                return _refusal(401, api.UNAUTHORIZED, "a valid bearer token is required")
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except ValidationError as error:
            return _refusal(400, api.BAD_REQUEST, str(error)[:2000])
        except Conflict as error:
            return _refusal(409, api.CONFLICT, str(error))
        except NodeFailed as error:
            return _refusal(422, api.NODE_FAILED, str(error))
        except TimeoutError as error:
            return _refusal(504, api.TIMEOUT, str(error))
        except Exception as error:
            log.exception("request failed", path=request.path)
            return _refusal(500, api.INTERNAL, f"{type(error).__name__}: {error}"[:2000])

    async def health(request: web.Request) -> web.Response:
        status = 200 if node.health.healthy else 503
        return web.Response(status=status, text=node.health.detail)

    async def live(request: web.Request) -> web.Response:
        # The agent answers: the node is looked after. A node recovering or receiving an SST
        # is exactly when a liveness kill would do harm.
        return web.Response(text="alive")

    async def about(request: web.Request) -> web.Response:
        return _json(api.Version(agent=version))

    async def status(request: web.Request) -> web.Response:
        return _json(node.status())

    async def start(request: web.Request) -> web.Response:
        order = await _body(request, api.StartRequest)
        if order.bootstrap and order.persist:
            return _refusal(
                400,
                api.BAD_REQUEST,
                "a bootstrap order cannot persist: a restarted node would bootstrap again and "
                "start a second cluster beside the first",
            )
        pid = await node.start(order.bootstrap, order.persist, order.config_sha256)
        return _json(api.Started(pid=pid))

    async def stop(request: web.Request) -> web.Response:
        order = await _body(request, api.StopRequest)
        await node.stop(order.mode, order.timeout, order.hold)
        return _json(node.status())

    async def position(request: web.Request) -> web.Response:
        return _json(await node.position())

    async def join(request: web.Request) -> web.Response:
        found = node.last_join()
        if found is None:
            return _json(api.LastJoin())
        return _json(api.LastJoin(method=found.method, detail=found.detail))

    async def initialize(request: web.Request) -> web.Response:
        return _json(api.Initialized(initialized=await node.initialize()))

    async def set_aside(request: web.Request) -> web.Response:
        return _json(api.SetAside(aside=await node.set_aside()))

    async def disk(request: web.Request) -> web.Response:
        return _json(api.Disk(free_bytes=node.free_bytes()))

    async def sql(request: web.Request) -> web.Response:
        order = await _body(request, api.SqlRequest)
        await asyncio.to_thread(node.sql, order.statements)
        return web.json_response({})

    async def users(request: web.Request) -> web.Response:
        await asyncio.to_thread(node.ensure_users)
        return web.json_response({})

    async def take_backup(request: web.Request) -> web.StreamResponse:
        """The hot backup as the response body; its outcome is asked for afterwards."""
        ident = _named(request, "id")
        if not node.is_running():
            raise Conflict(f"{node.config.node} is not running: a hot backup needs a running node")
        backups[ident] = api.BackupOutcome(id=ident, state=api.BackupState.RUNNING)
        while len(backups) > _OUTCOMES_KEPT:
            backups.popitem(last=False)
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        loop = asyncio.get_running_loop()

        def produce() -> None:
            with backup.backup_stream(node.paths) as stream:
                while chunk := stream.read(_CHUNK):
                    # Raises when the reader went away: mariabackup is stopped on the way out.
                    asyncio.run_coroutine_threadsafe(response.write(chunk), loop).result()

        try:
            await asyncio.to_thread(produce)
        except Exception as error:
            backups[ident] = api.BackupOutcome(
                id=ident, state=api.BackupState.FAILED, detail=str(error)[:4000]
            )
            log.warning("backup failed", id=ident, error=str(error)[:500])
        else:
            backups[ident] = api.BackupOutcome(id=ident, state=api.BackupState.SUCCEEDED)
        if backups[ident].state is api.BackupState.SUCCEEDED:
            await response.write_eof()
        else:
            # An incomplete body: the reader must not take the stream for a whole backup.
            if request.transport is not None:
                request.transport.close()
        return response

    async def backup_outcome(request: web.Request) -> web.Response:
        ident = _named(request, "id")
        if ident not in backups:
            return _refusal(404, api.NOT_FOUND, f"no backup {ident} on record")
        return _json(backups[ident])

    async def receive(request: web.Request) -> web.Response:
        name = _named(request, "name")
        loop = asyncio.get_running_loop()

        def chunks() -> Iterator[bytes]:
            while chunk := asyncio.run_coroutine_threadsafe(
                request.content.read(_CHUNK), loop
            ).result():
                yield chunk

        staging = await asyncio.to_thread(backup.receive, node.paths, name, chunks())
        return _json(api.Staged(staging=str(staging)))

    async def install(request: web.Request) -> web.Response:
        order = await _body(request, api.InstallRequest)
        staging = Path(order.staging)
        if staging.parent != node.paths.root or not staging.name.startswith(backup.STAGING_PREFIX):
            return _refusal(
                400, api.BAD_REQUEST, f"{staging} is not a staging directory of this node"
            )
        await node.install(staging)
        return web.json_response({})

    app = web.Application(middlewares=[guard], client_max_size=1 << 20)
    app.router.add_get(api.HEALTH, health)
    app.router.add_get(api.READY, health)
    app.router.add_get(api.LIVE, live)
    app.router.add_get(api.VERSION, about)
    app.router.add_get(api.NODE, status)
    app.router.add_post(api.START, start)
    app.router.add_post(api.STOP, stop)
    app.router.add_get(api.POSITION, position)
    app.router.add_get(api.JOIN, join)
    app.router.add_post(api.INITIALIZE, initialize)
    app.router.add_post(api.SET_ASIDE, set_aside)
    app.router.add_get(api.DISK, disk)
    app.router.add_post(api.SQL, sql)
    app.router.add_post(api.USERS, users)
    app.router.add_post(api.BACKUPS + "/{id}", take_backup)
    app.router.add_get(api.BACKUPS + "/{id}", backup_outcome)
    app.router.add_put(api.RESTORES + "/{name}", receive)
    app.router.add_post(api.RESTORES + "/{name}/install", install)
    return app


def _named(request: web.Request, key: str) -> str:
    value = request.match_info[key]
    if not _NAME.match(value):
        raise web.HTTPBadRequest(
            text=api.ErrorAnswer(
                error=api.BAD_REQUEST, message=f"bad {key}: {value!r}"
            ).model_dump_json(),
            content_type="application/json",
        )
    return value
