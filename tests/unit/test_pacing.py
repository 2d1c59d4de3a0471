"""Pure logic of worker/engine/pacing.py: token buckets, run windows, the pacer's reasons, the live probe."""
from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from sidepath.core.errors import ConfigError
from sidepath.core.run_window import parse_run_window
from sidepath.worker.engine.pacing import LiveLagProbe, Pacer, TokenBucket


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def epoch(text: str, zone: str = "UTC") -> float:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def test_bucket_refills_at_its_rate_and_caps_at_two_seconds() -> None:
    clock = Clock()
    b = TokenBucket(50, clock=clock)
    assert b.level() == 25                  # starts with half a second's worth: no start-up burst
    b.charge(25)
    clock.t += 0.2
    assert b.level() == pytest.approx(10)
    clock.t += 100
    assert b.level() == 100


def test_bucket_goes_into_debt_for_a_large_message_and_repays_it() -> None:
    clock = Clock()
    b = TokenBucket(1000, clock=clock)
    b.charge(5000)                          # one message five seconds' budget large
    assert b.level() < 0
    clock.t += 4.5
    assert b.level() == pytest.approx(0)


def test_pacer_holds_for_the_budget_with_hysteresis() -> None:
    mono = Clock()
    p = Pacer(messages_per_s=10, mono=mono)
    assert p.hold() is None and p.room(500) == 5
    p.charge(5, 0)
    assert p.hold() == "budget"
    mono.t += 0.3                           # 3 tokens: below the resume level (5), still held
    assert p.hold() == "budget"
    mono.t += 0.35
    assert p.hold() is None and p.room(500) == 6


def test_pacer_bytes_budget_holds_after_overdraft() -> None:
    mono = Clock()
    p = Pacer(bytes_per_s=1000, mono=mono)
    assert p.room(500) == 1                 # message size unknown yet: one at a time
    p.charge(1, 100)
    assert p.room(500) == 4                 # 400 bytes left, 100 a message
    p.charge(2, 1900)
    assert p.hold() == "budget"
    mono.t += 1.9
    assert p.hold() == "budget"             # 500 - 2000 + 1900 = 400: below the resume level (500)
    mono.t += 0.2
    assert p.hold() is None


@pytest.mark.parametrize("text,at,zone,open_", [
    ("22:00-06:00 Asia/Shanghai", "2026-12-06T23:30", "Asia/Shanghai", True),
    ("22:00-06:00 Asia/Shanghai", "2026-12-06T05:59", "Asia/Shanghai", True),
    ("22:00-06:00 Asia/Shanghai", "2026-12-06T06:00", "Asia/Shanghai", False),
    ("22:00-06:00 Asia/Shanghai", "2026-12-06T14:30", "UTC", True),       # 22:30 in Shanghai
    ("22:00-06:00 Asia/Shanghai", "2026-12-06T12:00", "UTC", False),      # 20:00 in Shanghai
    ("09:00-17:00", "2026-12-06T09:00", "UTC", True),
    ("09:00-17:00", "2026-12-06T17:00", "UTC", False),
    ("00:00-24:00", "2026-12-06T23:59", "UTC", True),
])
def test_run_window_open_or_closed(text: str, at: str, zone: str, open_: bool) -> None:
    assert parse_run_window(text).is_open(epoch(at, zone)) is open_


@pytest.mark.parametrize("bad", ["22-06", "25:00-06:00", "22:00-06:00 Mars/Base", "10:00-10:00", "22:00-06:70"])
def test_bad_run_window_is_one_clear_error(bad: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_run_window(bad)
    assert "engine.run_window" in str(exc.value)


def test_pacer_holds_outside_every_window() -> None:
    wall = Clock(epoch("2026-12-06T06:01", "Asia/Shanghai"))
    p = Pacer(windows=[parse_run_window("22:00-06:00 Asia/Shanghai"), parse_run_window("12:00-13:00 Asia/Shanghai")],
              wall=wall)
    assert p.hold() == "window" and p.idle_on_purpose()
    wall.t = epoch("2026-12-06T12:30", "Asia/Shanghai")
    assert p.hold() is None and not p.idle_on_purpose()


def test_live_probe_yields_above_max_lag_and_resumes_at_resume_lag() -> None:
    lags = iter([5, 150, 80, 20, 200, None])
    probe = LiveLagProbe(lambda: next(lags), group="review", max_lag=100, resume_lag=20, interval_s=1)
    seen = []
    for _ in range(6):
        probe.probe_once()
        seen.append(probe.behind.is_set())
    #        5      150   80 (hysteresis)  20    200   unknown: keep
    assert seen == [False, True, True, False, True, True]


def test_live_probe_keeps_its_decision_when_the_broker_cannot_answer() -> None:
    def fail() -> int:
        raise RuntimeError("broker away")

    probe = LiveLagProbe(fail, group="review", max_lag=10, resume_lag=0, interval_s=1)
    probe.behind.set()
    probe.probe_once()
    assert probe.behind.is_set()


def test_yield_is_the_reason_even_inside_the_window() -> None:
    probe = LiveLagProbe(lambda: 500, group="review", max_lag=100, resume_lag=10, interval_s=1)
    probe.probe_once()
    p = Pacer(live=probe)
    assert p.hold() == "yield" and p.idle_on_purpose()


def test_config_show_states_the_group_budget(tmp_path) -> None:
    import json

    from click.testing import CliRunner

    from sidepath.worker.cli.main import cli

    cfg = tmp_path / "sidepath.toml"
    cfg.write_text('[service]\nregion = "hk"\n[engine]\nmax_messages_per_s = 20\n[deploy.replicas]\nhk = 3\n')
    out = CliRunner().invoke(cli, ["--config", str(cfg), "config", "show"])
    assert out.exit_code == 0, out.output
    budget = json.loads(out.output)["derived"]["group_budget"]
    assert budget["max_messages_per_s"] == 60 and budget["replicas"] == 3
    toml = CliRunner().invoke(cli, ["--config", str(cfg), "config", "show", "--format", "toml"]).output
    assert "# group budget (derived, not a key): 20 messages/s x 3 replicas = 60 messages/s" in toml


def test_max_rate_below_zero_is_a_usage_error() -> None:
    from click.testing import CliRunner

    from sidepath.worker.cli.main import cli

    out = CliRunner().invoke(cli, ["run", "--max-rate", "-1"])
    assert out.exit_code == 2 and "--max-rate" in out.output
