from metrics.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_up_to_the_size_is_allowed_then_refused():
    bucket = TokenBucket(rate=5, burst=3, clock=FakeClock())
    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]


def test_tokens_come_back_at_the_rate():
    clock = FakeClock()
    bucket = TokenBucket(rate=5, burst=3, clock=clock)
    for _ in range(3):
        bucket.allow()
    clock.now += 0.2
    assert bucket.allow() is True
    assert bucket.allow() is False


def test_an_idle_bucket_refills_only_to_its_burst():
    clock = FakeClock()
    bucket = TokenBucket(rate=5, burst=3, clock=clock)
    clock.now += 3600
    assert [bucket.allow() for _ in range(4)] == [True, True, True, False]
