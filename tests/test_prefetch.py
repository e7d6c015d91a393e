"""The background producer: same items in order, bounded, errors carried over, stopped on close."""

import threading

import pytest
from stylereel.pipeline.prefetch import prefetch


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_yields_every_item_in_order(depth):
    assert list(prefetch(iter(range(20)), depth=depth)) == list(range(20))


def test_runs_at_most_depth_items_ahead():
    depth, taken, leads = 2, [], []
    furthest = threading.Event()

    def items():
        for index in range(30):
            leads.append(index - len(taken))  # how far ahead of the consumer this item is made
            if index == depth + 1:
                furthest.set()
            yield index

    consumer = prefetch(items(), depth=depth)
    for item in consumer:
        taken.append(item)
        if item == 0:
            # Wait (no fixed sleep) until the producer has made the furthest item it may: 1 and 2
            # wait in the queue and 3 waits to be put. An unbounded producer would race on past it.
            assert furthest.wait(30)
    assert taken == list(range(30))
    # Item i is made only once i - depth - 1 items were taken (the one being put counts too).
    assert max(leads) <= depth + 1, leads


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
