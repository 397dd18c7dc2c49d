"""Numbers within their bounds, read the same way by the settings and the flags."""

import argparse
import re

import pytest

from core.bounds import INTERVAL_SECONDS, Bounds, parse_interval


@pytest.mark.parametrize(
    ("raw", "value"), [("0.5", 0.5), ("3600", 3600.0), (" 5 ", 5.0)]
)
def test_a_number_within_its_bounds_is_read(raw, value):
    assert INTERVAL_SECONDS.parse(raw) == value


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("soon", "must be a number, got 'soon'"),
        ("0.4", "must be between 0.5 and 3600, got '0.4'"),
        ("3601", "must be between 0.5 and 3600, got '3601'"),
        ("nan", "must be between 0.5 and 3600, got 'nan'"),
        ("inf", "must be between 0.5 and 3600, got 'inf'"),
    ],
)
def test_a_bad_number_says_what_is_wrong(raw, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        INTERVAL_SECONDS.parse(raw)


def test_a_whole_number_refuses_a_fraction():
    with pytest.raises(ValueError, match=r"^must be a whole number, got '2\.5'$"):
        Bounds(1, 64).parse("2.5", whole=True)
    assert Bounds(1, 64).parse("64", whole=True) == 64


def test_a_flag_type_raises_what_argparse_reports():
    parser = argparse.ArgumentParser()
    parser.add_argument("--interval", type=parse_interval)
    assert parser.parse_args(["--interval", "2"]).interval == 2.0
    with pytest.raises(argparse.ArgumentTypeError, match=r"0\.5 and 3600 seconds"):
        parse_interval("0")
