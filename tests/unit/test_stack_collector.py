"""The local stack's garbage collection (devstack.stack.freeze_survivors): what survives a full
pass is kept out of the next ones, so that a full pass goes over what was made since; a younger
pass freezes nothing, and cyclic garbage is still collected."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from devstack.stack import freeze_survivors

KEPT = 5_000


class Node:
    """A tracked object that can take part in a cycle."""

    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def stack_collector() -> Iterator[None]:
    gc.collect()
    gc.callbacks.append(freeze_survivors)
    try:
        yield
    finally:
        gc.callbacks.remove(freeze_survivors)
        gc.unfreeze()


@pytest.mark.usefixtures("stack_collector")
def test_what_survives_a_full_pass_is_kept_out_of_the_next() -> None:
    kept = [Node() for _ in range(KEPT)]
    before = gc.get_freeze_count()

    gc.collect(0)
    gc.collect(1)
    assert gc.get_freeze_count() == before  # a younger pass freezes nothing

    gc.collect()
    assert gc.get_freeze_count() >= before + len(kept)


@pytest.mark.usefixtures("stack_collector")
def test_cyclic_garbage_made_after_a_full_pass_is_still_collected() -> None:
    gc.collect()
    first, second = Node(), Node()
    first.other, second.other = second, first
    gone = weakref.ref(first)
    del first, second

    gc.collect()

    assert gone() is None
