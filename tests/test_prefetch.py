"""The background producer: same items in order, bounded, errors carried over, stopped on close."""

import threading
import time

import pytest
from stylereel.pipeline.prefetch import prefetch


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_yields_every_item_in_order(depth):
    assert list(prefetch(iter(range(20)), depth=depth)) == list(range(20))


def test_runs_at_most_depth_items_ahead():
    produced = []

    def items():
        for index in range(100):
            produced.append(index)
            yield index

    consumer = prefetch(items(), depth=2)
    assert next(consumer) == 0
    time.sleep(0.3)  # time for the producer to run as far ahead as it is allowed
    # 0 was taken; 1 and 2 wait in the queue; 3 is made and waits to be put.
    assert len(produced) <= 4
    consumer.close()


def test_an_error_in_the_producer_is_raised_in_the_consumer_after_the_items_before_it():
    def items():
        yield 1
        raise ValueError("frame 2 is damaged")

    consumer = prefetch(items(), depth=2)
    assert next(consumer) == 1
    with pytest.raises(ValueError, match="frame 2 is damaged"):
        next(consumer)


def test_closing_the_consumer_stops_the_producer_and_closes_its_items():
    closed = threading.Event()

    def items():
        try:
            while True:
                yield 0
        finally:
            closed.set()

    consumer = prefetch(items(), depth=1)
    next(consumer)
    consumer.close()
    assert closed.wait(2)
    assert not any(thread.name == "stylereel-prefetch" for thread in threading.enumerate())
