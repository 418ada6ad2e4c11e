"""The ``fusion`` command line: a thin Typer layer over :mod:`fusioncli.analysis`.

Exit codes: 0 success; 2 usage or spec error (bad flag, shape, kind, option or preset
file); 1 run-time failure (device unavailable, out of memory, a block that raises);
130 interrupted. :mod:`.entry` maps every outcome to these.
Errors are one line on stderr; ``--debug`` shows the traceback. stdout carries data only.
Importing this module does not import torch: listing commands and ``--help`` stay fast.
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from .. import __version__
from .state import state

# command -> the module that declares it, in the order `fusion --help` lists them
COMMANDS = {"inspect": "analyze", "compare": "analyze", "export": "export", "blocks": "listing", "presets": "listing",
            "explain": "listing", "sweep": "sweep", "merge": "sweep", "schema": "schema", "machine": "machine"}


class LazyGroup(TyperGroup):
    """Click's lazy group: a command's module is imported when the command is asked for (running
    it, its help, ``fusion --help``, completion, a did-you-mean), not when the group is built."""

    def list_commands(self, ctx) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx, name: str):
        if name not in self.commands and name in COMMANDS:
            load_commands(name)
            from typer.main import get_command_from_info

            for info in app.registered_commands:
                if (info.name or "") not in self.commands:
                    cmd = get_command_from_info(info, pretty_exceptions_short=app.pretty_exceptions_short,
                                                rich_markup_mode=app.rich_markup_mode)
                    self.commands[cmd.name] = cmd
        return super().get_command(ctx, name)

    def resolve_command(self, ctx, args):
        from .entry import _click_exc

        try:
            return super().resolve_command(ctx, args)
        except _click_exc.UsageError:  # an unknown command: the did-you-mean list needs every name loaded
            for name in COMMANDS:
                self.get_command(ctx, name)
            return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=LazyGroup,
    name="fusion",
    help="Explore feature fusion blocks: shapes, parameters, exact MACs/FLOPs, memory and latency.\n\n"
    "Exit codes: 0 success, 1 run-time failure (device absent, out of memory, refused by the memory guard, "
    "a block that raises), 2 usage or spec error (bad flag, shape, kind, option or preset file), "
    "130 interrupted (Ctrl-C). Errors are one line on stderr; with --format json, stdout carries "
    "the error object (see `fusion schema`).",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    # plain help text: rich's help formatter imports rich.markdown (markdown-it) and
    # rich.traceback (pygments), ~0.15 s on every `--help`, half the start-up budget of issue 8
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fusioncli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    state.debug = debug


def load_commands(command: str | None = None) -> None:
    """Import the modules that declare commands: the one declaring ``command``, or all of them
    (``command`` None or unknown). Importing one registers its commands on :data:`app`."""
    import importlib

    modules = [COMMANDS[command]] if command in COMMANDS else dict.fromkeys(COMMANDS.values())
    for name in modules:
        importlib.import_module(f"{__name__}.{name}")


from .entry import main  # noqa: E402,F401  (one-line errors, exit codes, Ctrl-C)
