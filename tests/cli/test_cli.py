"""The `hazwatch` console script and its plug-in registry."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

import hazwatch
from hazwatch.cli import COMMAND_PACKAGES, Commands, build_parser, main

SCRIPT = Path(sys.executable).with_name("hazwatch")


def test_version_and_help_from_the_installed_script() -> None:
    version = subprocess.run([SCRIPT, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"hazwatch {hazwatch.__version__}"
    helptext = subprocess.run([SCRIPT, "--help"], capture_output=True, text=True, check=True).stdout
    assert "commands:" in helptext


def test_help_lists_every_registered_command() -> None:
    parser = build_parser()
    helptext = parser.format_help()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in subparsers.choices:
        assert name in helptext


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: hazwatch" in capsys.readouterr().out


def test_commands_plug_in_with_groups() -> None:
    parser = argparse.ArgumentParser(prog="x")
    commands = Commands(parser)
    commands.group("sim", help="simulators")
    commands.group("sim", help="simulators")  # a second module may declare it again
    sub = commands.add("sim modbus", help="serve a profile", handler=lambda args: 7)
    sub.add_argument("--port", type=int)
    commands.add("edge", help="run the agent", handler=lambda args: 3)
    args = parser.parse_args(["sim", "modbus", "--port", "5020"])
    assert (args.handler(args), args.port) == (7, 5020)
    with pytest.raises(ValueError, match="group 'nope' must be declared"):
        commands.add("nope thing", help="x", handler=lambda args: 0)


def test_command_packages_exist() -> None:
    for name in COMMAND_PACKAGES:
        __import__(name)
