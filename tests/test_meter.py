"""Stall meter (fraction of wall time spent waiting for data) and device prefetch."""

import time

import numpy as np
import pytest

from jaxnets.train.meter import StallMeter


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def slow_source(clock, delays):
    for delay in delays:
        clock.now += delay  # time spent producing the item, inside next()
        yield delay


def test_fraction_is_waiting_over_wall_time():
    clock = FakeClock()
    meter = StallMeter(slow_source(clock, [1.0, 1.0, 1.0]), clock=clock)
    for _ in meter:
        clock.now += 3.0  # the consumer's own work
    assert meter.batches == 3
    assert meter.wait_seconds == pytest.approx(3.0)
    assert meter.wall_seconds == pytest.approx(12.0)
    assert meter.fraction == pytest.approx(0.25)


def test_the_loop_reading_examples_per_second_stall_and_eta_with_eval_left_out():
    clock = FakeClock()
    meter = StallMeter(slow_source(clock, [1.0, 1.0]), clock=clock)
    for _ in meter:
        clock.now += 4.0              # one call of 2 steps on 64 examples
        meter.add(examples=64, steps=2)
    clock.now += 5.0                  # an evaluation
    meter.exclude(5.0)
    assert meter.read(steps_left=8) == {"seconds": pytest.approx(10.0),
                                        "examples_per_sec": pytest.approx(12.8),
                                        "stall_fraction": pytest.approx(0.2),
                                        "eta_seconds": pytest.approx(20.0)}


def test_reset_starts_a_new_window():
    clock = FakeClock()
    meter = StallMeter(slow_source(clock, [5.0, 0.0]), clock=clock)
    next(meter)
    assert meter.fraction == pytest.approx(1.0)
    meter.reset()
    assert (meter.fraction, meter.batches, meter.wait_seconds) == (0.0, 0, 0.0)
    clock.now += 1.0
    next(meter)
    assert meter.fraction == pytest.approx(0.0) and meter.batches == 1


def test_real_clock_sees_a_slow_producer():
    import time

    def producer():
        for _ in range(3):
            time.sleep(0.02)
            yield 0

    meter = StallMeter(producer())
    assert sum(1 for _ in meter) == 3
    assert 0.5 < meter.fraction <= 1.0 and "waiting" in repr(meter)


def test_prefetch_to_device_keeps_order_and_stays_size_ahead():
    import jax

    from jaxnets.train.placement import prefetch_to_device

    pulled = []

    def source():
        for i in range(8):
            pulled.append(i)
            yield {"x": np.full((2,), i, np.float32)}

    batches = prefetch_to_device(source(), size=2)
    first = next(batches)
    time.sleep(0.3)  # the placing thread runs ahead, then waits for room in its queue
    assert isinstance(first["x"], jax.Array)
    assert len(pulled) == 4  # 1 held + 2 queued + 1 waiting to be queued
    rest = [int(b["x"][0]) for b in batches]
    assert [int(first["x"][0])] + rest == list(range(8))
    with pytest.raises(ValueError, match="prefetch size"):
        next(prefetch_to_device(source(), size=0))
