"""The cycle collector settings a run changes are the caller's again afterwards (a notebook runs many)."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref

import pytest

from mmad._io import collector_frozen, collector_paused


def test_a_frozen_block_hands_every_object_back_even_when_it_fails() -> None:
    assert gc.get_freeze_count() == 0
    alive = [[i] for i in range(1000)]
    with pytest.raises(RuntimeError), collector_frozen():
        assert gc.get_freeze_count() >= len(alive)
        raise RuntimeError
    assert gc.get_freeze_count() == 0
    # a cycle made before the block is left alone in it, and collected after it
    cycle = Node()
    cycle.next = cycle
    watch = weakref.ref(cycle)
    with collector_frozen():
        del cycle
        gc.collect()
        assert watch() is not None
    gc.collect()
    assert watch() is None


class Node:
    next: object = None


def test_frozen_blocks_nest_and_the_last_one_hands_back() -> None:
    with collector_frozen():
        at_outer = gc.get_freeze_count()
        made_in_outer = [[i] for i in range(1000)]
        with collector_frozen():
            # the nested block froze what the outer one made since
            assert gc.get_freeze_count() >= at_outer + len(made_in_outer)
        # and leaving it did not hand the outer block's objects back
        assert gc.get_freeze_count() >= at_outer + len(made_in_outer) - 10
    assert gc.get_freeze_count() == 0


def test_objects_the_caller_froze_stay_frozen() -> None:
    """A server that froze its heap before forking calls mmad.evaluate: the run leaves that freeze as it was
    (gc.unfreeze() would have handed the caller's objects back to the collector too)."""
    theirs = [[i] for i in range(1000)]
    gc.freeze()
    try:
        assert gc.get_freeze_count() >= len(theirs)
        with collector_frozen(), collector_frozen():
            pass
        # Still frozen: the collector's generations do not hold it (the count itself moves by the few frozen
        # objects freed meanwhile, such as frames, so it is no measure).
        assert not any(o is theirs[0] for o in gc.get_objects())
        assert gc.get_freeze_count() >= len(theirs)
    finally:
        gc.unfreeze()
    assert any(o is theirs[0] for o in gc.get_objects())  # the check above can tell
    # and a later run in the same process freezes and hands back its own again
    with collector_frozen():
        assert gc.get_freeze_count() >= len(theirs)
    assert gc.get_freeze_count() == 0


def test_a_paused_collector_is_enabled_again_only_if_it_was() -> None:
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.subprocess
def test_the_program_exits_with_its_status() -> None:
    """`python -m mmad` goes through `entry`, which freezes the heap before exiting: the status survives."""
    done = subprocess.run([sys.executable, "-m", "mmad", "no-such-command"], capture_output=True, text=True)
    assert done.returncode == 2 and "No such command" in done.stderr
    done = subprocess.run([sys.executable, "-m", "mmad", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("mmad ")
