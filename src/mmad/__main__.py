"""python -m mmad."""

from mmad.cli import entry

entry()
