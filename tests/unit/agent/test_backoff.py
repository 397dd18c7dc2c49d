from agent.backoff import Backoff


def delays(backoff: Backoff, count: int) -> list[float]:
    return [backoff.next_delay() for _ in range(count)]


def test_delays_double_from_half_a_second_up_to_thirty():
    backoff = Backoff(random=lambda: 1.0)
    assert delays(backoff, 9) == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def test_jitter_keeps_each_delay_in_the_upper_half_of_its_step():
    assert delays(Backoff(random=lambda: 0.0), 8) == [0.25, 0.5, 1, 2, 4, 8, 15, 15]
    assert delays(Backoff(random=lambda: 0.5), 3) == [0.375, 0.75, 1.5]


def test_reset_starts_again_from_the_first_delay():
    backoff = Backoff(random=lambda: 1.0)
    delays(backoff, 5)
    backoff.reset()
    assert delays(backoff, 2) == [0.5, 1]


def test_a_host_away_for_weeks_still_waits_thirty_seconds():
    backoff = Backoff(random=lambda: 1.0)
    backoff.attempts = 100_000
    assert backoff.next_delay() == 30
