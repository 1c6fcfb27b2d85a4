"""The ``roomcast`` console script: a composition root, kept thin.

Each command builds :class:`Settings` once (an invalid variable is one line on stderr and exit
code 2) and hands it to the part it runs. A dependency that cannot be reached is one line on
stderr and exit code 1.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal, NoReturn, TypeVar

import typer

from core.errors import ConfigurationError, RoomcastError
from core.settings import Settings, load_settings

app = typer.Typer(
    name="roomcast",
    help="Live audio rooms that become replays and podcast episodes.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

T = TypeVar("T")

EXIT_DEPENDENCY = 1
EXIT_CONFIGURATION = 2


def _fail(command: str, message: str, code: int) -> NoReturn:
    typer.echo(f"roomcast {command}: {message}", err=True)
    raise typer.Exit(code)


def _settings(command: str) -> Settings:
    try:
        return load_settings()
    except ConfigurationError as exc:
        _fail(command, exc.message, EXIT_CONFIGURATION)


def _guard(command: str, action: Callable[[], T]) -> T:
    """Run ``action``; our errors become one line on stderr, not a traceback."""
    try:
        return action()
    except ConfigurationError as exc:
        _fail(command, exc.message, EXIT_CONFIGURATION)
    except RoomcastError as exc:
        _fail(command, exc.message, EXIT_DEPENDENCY)


@app.command()
def up() -> None:
    """Run everything on this machine: migrations, Redis, one worker and the API."""
    from roomcast import up as supervisor

    settings = _settings("up")
    code = _guard("up", lambda: supervisor.run(settings))
    raise typer.Exit(code)


@app.command()
def api() -> None:
    """Serve the HTTP API (uvicorn) on ROOMCAST_API__HOST:ROOMCAST_API__PORT."""
    import uvicorn

    from api.app import create_app

    settings = _settings("api")
    uvicorn.run(
        create_app(settings),
        host=settings.api.host,
        port=settings.api.port,
        log_level=settings.log_level.lower(),
    )


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(min=1, help="Pool processes.")] = 1,
    beat: Annotated[
        bool, typer.Option(help="Also run the periodic scheduler (in exactly one worker).")
    ] = False,
    queues: Annotated[
        str,
        typer.Option(
            help="Comma-separated queues: default,media (the default) or live (followers of"
            " live rooms: one pool process per room recorded at once)."
        ),
    ] = "default,media",
) -> None:
    """Run a Celery worker (default: on the default and media queues)."""
    from workers.app import create_app, worker_argv

    settings = _settings("worker")
    settings.var_path.mkdir(parents=True, exist_ok=True)
    chosen = tuple(name.strip() for name in queues.split(",") if name.strip())
    argv = worker_argv(settings, concurrency=concurrency, beat=beat, queues=chosen)
    create_app(settings).worker_main(argv)


@app.command()
def migrate() -> None:
    """Upgrade the database schema to the newest revision."""
    from core.adapters.db.migrate import current, upgrade

    settings = _settings("migrate")
    _guard("migrate", lambda: upgrade(settings.database_url))
    typer.echo(f"database at revision {_guard('migrate', lambda: current(settings.database_url))}")


@app.command()
def live() -> None:
    """Serve a live node (signaling WebSocket + WebRTC) on ROOMCAST_LIVE__HOST:PORT.

    With ROOMCAST_REDIS__URL set, the node joins the cluster (room placement, origin/edge and
    /metrics, see docs/scaling.md); without it, it runs as a single standalone node.
    """
    import uvicorn

    from live.cluster import create_cluster_app
    from live.node import create_live_app
    from live.process import prepare_live_process

    settings = _settings("live")
    prepare_live_process()
    factory = create_cluster_app if settings.redis.url else create_live_app
    application = _guard("live", lambda: factory(settings))
    uvicorn.run(
        application,
        host=settings.live.host,
        port=settings.live.port,
        log_level=settings.log_level.lower(),
        # Signaling messages are small JSON sent to every listener (active speaker ~2/s):
        # per-message deflate would cost CPU per listener and save next to nothing.
        ws_per_message_deflate=False,
    )


@app.command()
def export(
    manifest: Annotated[Path, typer.Argument(help="A recording's manifest.json.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output file (HLS: a directory).")],
    fmt: Annotated[
        Literal["mp3", "m4a", "wav", "flac", "hls"] | None,
        typer.Option("--format", help="Default: from the output's extension."),
    ] = None,
    target_lufs: Annotated[
        float | None, typer.Option(help="Default: ROOMCAST_AUDIO__TARGET_LUFS.")
    ] = None,
    no_level: Annotated[bool, typer.Option("--no-level", help="Do not level speakers.")] = False,
    segments: Annotated[Path | None, typer.Option(help="Directory holding the segments.")] = None,
) -> None:
    """Render a recording manifest to an episode file, offline, with a progress bar."""
    from workers.audio.export import export_with_progress

    settings = _settings("export")
    level = False if no_level else None
    _guard("export", lambda: export_with_progress(
        manifest, out, settings, fmt=fmt, target_lufs=target_lufs, level=level, segments=segments
    ))  # fmt: skip


def main() -> None:
    """Console-script entry point."""
    app(prog_name="roomcast")


if __name__ == "__main__":
    main()
