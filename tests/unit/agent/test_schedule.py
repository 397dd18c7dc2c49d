from agent.schedule import next_tick


def test_next_tick_keeps_the_fixed_schedule():
    assert next_tick(start=100.0, interval=5.0, now=100.3) == 105.0
    assert next_tick(start=100.0, interval=5.0, now=104.9) == 105.0


def test_next_tick_skips_ticks_already_missed():
    assert next_tick(start=100.0, interval=5.0, now=111.0) == 115.0


def test_next_tick_on_a_tick_is_the_following_one():
    assert next_tick(start=100.0, interval=5.0, now=105.0) == 110.0
