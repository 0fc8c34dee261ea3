"""The command line's one error type: one line on stderr, exit status 2."""

from __future__ import annotations

import click

EXIT_USAGE = 2


class CommandError(click.ClickException):
    """A problem with the input or the environment, told in one line (exit status 2)."""

    exit_code = EXIT_USAGE

    def show(self, file=None) -> None:
        click.echo(f"cat-engine: error: {self.format_message()}", err=True)
