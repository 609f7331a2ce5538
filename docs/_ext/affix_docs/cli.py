"""The CLI reference: every command and flag, walked from :func:`build_parser`'s parser.

argparse keeps its actions and subcommands in attributes of its own (``_actions``,
``_choices_actions``), which every tool that documents a parser reads, as this does."""
import argparse
from typing import NamedTuple

from affix.app.cli.commands import build_parser

from affix_docs.markdown import code, label, table


class Command(NamedTuple):
    # ("affix", "user", "add")
    words: tuple
    parser: argparse.ArgumentParser
    help: str

    @property
    def name(self) -> str:
        return " ".join(self.words)


def _subcommands(parser) -> argparse._SubParsersAction | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def commands(parser=None, words=("affix",), help="") -> list:
    """The commands that run something (a group's own parser only chooses among them),
    depth first, in the order the parser declares them."""
    parser = build_parser() if parser is None else parser
    subcommands = _subcommands(parser)
    if subcommands is None:
        return [Command(words, parser, help)]
    helps = {choice.dest: choice.help or "" for choice in subcommands._choices_actions}
    found = []
    for name, subparser in subcommands.choices.items():
        found += commands(subparser, words + (name,), helps.get(name, ""))
    return found


def arguments(parser) -> list:
    """The parser's arguments and flags, without ``--help``."""
    return [action for action in parser._actions
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))]


def _name(action) -> str:
    if not action.option_strings:
        return action.metavar or action.dest
    if action.nargs == 0:
        return ", ".join(action.option_strings)
    metavar = action.metavar or action.dest.upper()
    return ", ".join(f"{option} {metavar}" for option in action.option_strings)


def _help(parser, action) -> str:
    """The help text as ``--help`` shows it, with ``%(default)s`` and the like filled in."""
    if not action.help:
        return ""
    return parser._get_formatter()._expand_help(action)


def _section(command: Command) -> str:
    usage = " ".join(command.parser.format_usage().split())
    out = [label("cli-" + "-".join(command.words)), f"## {code(command.name)}", ""]
    if command.help:
        out += [command.help[0].upper() + command.help[1:] + ".", ""]
    out += ["```text", usage.removeprefix("usage: "), "```", ""]
    rows = [(code(_name(action)), _help(command.parser, action) + (
        " (required)" if action.required and action.option_strings else ""))
        for action in arguments(command.parser)]
    if rows:
        out.append(table(("argument", "meaning"), rows))
    return "\n".join(out)


def reference() -> str:
    return "\n".join(_section(command) for command in commands())
