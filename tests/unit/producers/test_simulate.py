"""The grid simulator: determinism, ordering, load shape, incident signatures, live mode."""

from __future__ import annotations

import csv
import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pytest

from gridalarm.messages import validate
from gridalarm.producers.simulate import (
    DEFAULT_START,
    EVENT_KINDS,
    INCIDENT_KINDS,
    Incident,
    SimEvent,
    Simulation,
    SimulationConfig,
    write_simulation,
)
from gridalarm.timeutil import parse_time

HOUR = 3600.0
DAY = 86_400.0
KIND_INDEX = {kind: i for i, kind in enumerate(EVENT_KINDS)}


@dataclass(frozen=True)
class Counts:
    """Per-window event counts of a finite run: ``data[stream, window, kind]``."""

    sim: Simulation
    data: np.ndarray

    def of(self, incident: Incident) -> tuple[np.ndarray, np.ndarray]:
        """The incident stream's counts, and a mask of the windows inside the incident."""
        config = self.sim.config
        stream = self.sim.streams.index(incident.stream)
        first = round((incident.start - config.start) / config.window)
        last = round((incident.end - config.start) / config.window)
        inside = np.zeros(self.data.shape[1], dtype=bool)
        inside[first:last] = True
        return self.data[stream], inside

    def kind(self, incident: Incident, *kinds: str) -> tuple[np.ndarray, np.ndarray]:
        """Counts of ``kinds`` (summed) inside and outside the incident, per window."""
        data, inside = self.of(incident)
        series = data[:, [KIND_INDEX[k] for k in kinds]].sum(axis=1)
        return series[inside], series[~inside]


def window_counts(sim: Simulation) -> Counts:
    config = sim.config
    assert config.duration is not None
    windows = round(config.duration / config.window)
    data = np.zeros((len(sim.streams), windows, len(EVENT_KINDS)), dtype=np.int64)
    stream_index = {s: i for i, s in enumerate(sim.streams)}
    for ev in sim.events():
        window = int((ev.ts - config.start) // config.window)
        data[stream_index[ev.stream], window, KIND_INDEX[ev.kind]] += 1
    return Counts(sim, data)


@pytest.fixture(scope="module", params=[7, 2026])
def day(request: pytest.FixtureRequest) -> Counts:
    """8 streams for a day at 1-minute windows with every incident kind once."""
    config = SimulationConfig(
        streams=8, duration=DAY, window=60.0, incidents=INCIDENT_KINDS, seed=request.param
    )
    return window_counts(Simulation(config))


def incident_of(counts: Counts, kind: str) -> Incident:
    (incident,) = [i for i in counts.sim.labels if i.kind == kind]
    return incident


# --------------------------------------------------------------------------- files


def small_config(seed: int = 5) -> SimulationConfig:
    return SimulationConfig(
        streams=5, duration=6 * HOUR, window=60.0, incidents=INCIDENT_KINDS, seed=seed
    )


def test_same_seed_writes_identical_files_and_another_seed_differs(tmp_path: Path) -> None:
    first = write_simulation(Simulation(small_config()), tmp_path / "a")
    second = write_simulation(Simulation(small_config()), tmp_path / "b")
    other = write_simulation(Simulation(small_config(seed=6)), tmp_path / "c")

    assert first == second
    assert first[1] == len(INCIDENT_KINDS)
    for name in ("events.jsonl", "labels.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "events.jsonl").read_bytes() != (
        tmp_path / "c" / "events.jsonl"
    ).read_bytes()
    assert other[0] > 0
    assert not list(tmp_path.glob("*/*.tmp"))


def test_written_files_hold_wire_messages_and_labels(tmp_path: Path) -> None:
    sim = Simulation(small_config())
    written, incidents = write_simulation(sim, tmp_path)

    lines = (tmp_path / "events.jsonl").read_bytes().splitlines()
    expected = [orjson.dumps(sim.message(ev)) for ev in sim.events()]
    assert written == len(lines) == len(expected)
    assert lines == expected
    for line in lines[:: max(1, len(lines) // 500)]:
        message = orjson.loads(line)
        validate("event", message)
        assert message["source"] == "simulator"

    with open(tmp_path / "labels.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["stream", "start", "end", "kind"]
    assert len(rows) - 1 == incidents == len(sim.labels)
    for row, label in zip(rows[1:], sim.labels, strict=True):
        assert row[0] == label.stream and row[3] == label.kind
        assert row[1].endswith("Z") and parse_time(row[1]) == label.start
        assert parse_time(row[2]) == label.end


def test_message_is_the_event_contract() -> None:
    sim = Simulation(small_config())
    ev = SimEvent(DEFAULT_START + 1.25, sim.streams[0], "JobHeldEvent")
    assert sim.message(ev) == {
        "v": 1,
        "ts": "2026-01-05T00:00:01.250Z",
        "stream": "schedd:sim01",
        "type": "JobHeldEvent",
        "source": "simulator",
    }


def test_write_refuses_an_endless_run(tmp_path: Path) -> None:
    sim = Simulation(SimulationConfig(streams=2, duration=None))
    with pytest.raises(ValueError, match=r"^duration: .*endless"):
        write_simulation(sim, tmp_path)
    assert not (tmp_path / "events.jsonl").exists()


# --------------------------------------------------------------------------- the event stream


def test_events_are_sorted_and_every_stream_emits(day: Counts) -> None:
    config = day.sim.config
    times = np.array([ev.ts for ev in day.sim.events(until=config.start + 4 * HOUR)])
    assert times.size > 0 and np.all(np.diff(times) >= 0)
    assert times[0] >= config.start
    # Millisecond precision, as the wire format carries it.
    assert np.allclose(np.round(times * 1000) / 1000, times, rtol=0, atol=1e-6)

    per_stream = day.data.sum(axis=(1, 2))
    assert day.sim.streams == [f"schedd:sim{i:02d}" for i in range(1, 9)]
    assert np.all(per_stream > 1000), per_stream
    assert day.data.sum(axis=(0, 1))[KIND_INDEX["JobImageSizeEvent"]] == max(
        day.data.sum(axis=(0, 1))
    )


def test_until_gives_a_prefix_of_the_whole_run() -> None:
    sim = Simulation(small_config())
    cut = DEFAULT_START + 3 * HOUR + 17.5
    head = list(sim.events(until=cut))
    whole = list(sim.events())
    assert head == whole[: len(head)]
    assert head[-1].ts < cut <= whole[len(head)].ts


def test_diurnal_and_fast(pool: tuple[float, int, np.ndarray]) -> None:
    """20 streams x 2 days: generated in well under 10 s, about a million events or fewer,
    more in the afternoon than at night."""
    elapsed, events, per_hour = pool
    print(f"20 streams x 2 days: {events} events in {elapsed:.2f} s")
    assert elapsed < 10.0
    assert 500_000 < events < 1_100_000
    afternoon, night = per_hour[12:18].sum(), per_hour[0:6].sum()
    assert afternoon > 1.8 * night, (afternoon, night)


@pytest.fixture(scope="module")
def pool() -> tuple[float, int, np.ndarray]:
    config = SimulationConfig(streams=20, duration=2 * DAY, window=60.0, seed=11)
    per_hour = np.zeros(24, dtype=np.int64)
    began = time.perf_counter()
    hours = [int(ev.ts % DAY) // 3600 for ev in Simulation(config).events()]
    elapsed = time.perf_counter() - began
    np.add.at(per_hour, hours, 1)
    return elapsed, len(hours), per_hour


def test_weekend_is_quieter_than_weekdays() -> None:
    config = SimulationConfig(streams=4, start=DEFAULT_START + 4 * DAY, duration=2 * DAY, seed=3)
    friday_end = config.start + DAY
    friday = saturday = 0
    for ev in Simulation(config).events():
        if ev.ts < friday_end:
            friday += 1
        else:
            saturday += 1
    assert saturday < 0.8 * friday


# --------------------------------------------------------------------------- incidents


def test_incidents_come_after_the_warmup_and_never_overlap() -> None:
    for seed, streams, duration in itertools.product(range(12), (2, 3, 10), (6 * HOUR, 2 * DAY)):
        config = SimulationConfig(
            streams=streams, duration=duration, window=60.0, incidents=INCIDENT_KINDS, seed=seed
        )
        labels = Simulation(config).labels
        assert sorted(i.kind for i in labels) == sorted(INCIDENT_KINDS)
        warmup = max(0.25 * duration, 2 * HOUR)
        for inc in labels:
            assert config.start + warmup <= inc.start < inc.end <= config.start + duration
            assert (inc.start - config.start) % 60 == 0 and (inc.end - inc.start) % 60 == 0
            assert (inc.end - inc.start) / 60 <= 40
        if streams >= len(INCIDENT_KINDS):
            assert len({i.stream for i in labels}) == len(INCIDENT_KINDS)
            assert all((i.end - i.start) / 60 >= 10 for i in labels)
        by_stream: dict[str, list[Incident]] = {}
        for inc in labels:
            by_stream.setdefault(inc.stream, []).append(inc)
        for same in by_stream.values():
            same.sort(key=lambda i: i.start)
            for before, after in itertools.pairwise(same):
                assert before.end <= after.start, (seed, streams, before, after)


def test_outage_stream_is_silent_only_inside_its_interval(day: Counts) -> None:
    outage = incident_of(day, "outage")
    inside = [
        ev
        for ev in day.sim.events(until=outage.end + 3 * 60)
        if ev.stream == outage.stream and ev.ts >= outage.start - 5 * 60
    ]
    assert not [ev for ev in inside if outage.start <= ev.ts < outage.end]
    assert any(ev.ts < outage.start for ev in inside)
    assert any(ev.ts >= outage.end for ev in inside)
    series, mask = day.of(outage)
    assert series[mask].sum() == 0
    assert series[~mask].sum(axis=1).min() >= 0 and np.median(series[~mask].sum(axis=1)) > 3


def assert_surge(inside: np.ndarray, outside: np.ndarray, factor: float) -> None:
    """Inside the incident the per-window mean is ``factor`` times the outside mean and
    clearly above the outside median."""
    assert inside.mean() >= factor * outside.mean(), (inside.mean(), outside.mean())
    assert inside.mean() >= np.median(outside) + 0.75, (inside.mean(), np.median(outside))


def test_hold_storm_raises_holds(day: Counts) -> None:
    storm = incident_of(day, "hold_storm")
    assert_surge(*day.kind(storm, "JobHeldEvent"), factor=15)
    released_in, released_out = day.kind(storm, "JobReleaseEvent")
    assert released_in.mean() > 3 * released_out.mean()


def test_eviction_wave_evicts_and_starts_fewer_jobs(day: Counts) -> None:
    wave = incident_of(day, "eviction_wave")
    assert_surge(*day.kind(wave, "JobEvictedEvent"), factor=10)
    execs_in, execs_out = day.kind(wave, "ExecuteEvent")
    submits_in, submits_out = day.kind(wave, "SubmitEvent")
    # Relative to submissions, so the time of day does not matter.
    assert execs_in.sum() / submits_in.sum() < 0.6 * execs_out.sum() / submits_out.sum()


def test_disconnect_storm_disconnects_then_fails_reconnects(day: Counts) -> None:
    storm = incident_of(day, "disconnect_storm")
    assert_surge(*day.kind(storm, "JobDisconnectedEvent"), factor=10)
    failed_in, failed_out = day.kind(storm, "JobReconnectFailedEvent")
    assert failed_in.sum() >= 5 and failed_in.mean() >= 20 * failed_out.mean()
    lost_in, _ = day.kind(storm, "JobDisconnectedEvent")
    position = np.arange(lost_in.size)
    # "then": failures come later in the interval than the disconnects.
    assert (position * failed_in).sum() / failed_in.sum() > (position * lost_in).sum() / (
        lost_in.sum()
    )


def test_black_hole_churns_short_jobs(day: Counts) -> None:
    hole = incident_of(day, "black_hole")
    assert_surge(*day.kind(hole, "JobAbortedEvent", "ShadowExceptionEvent"), factor=10)
    execs_in, execs_out = day.kind(hole, "ExecuteEvent")
    assert execs_in.mean() > 2 * execs_out.mean()
    ends_in, ends_out = day.kind(hole, "JobTerminatedEvent")
    assert ends_in.sum() / execs_in.sum() < 0.3 * ends_out.sum() / execs_out.sum()


def test_submit_flood_multiplies_submits(day: Counts) -> None:
    flood = incident_of(day, "submit_flood")
    inside, outside = day.kind(flood, "SubmitEvent")
    assert_surge(inside, outside, factor=5)
    assert inside.mean() >= 5 * np.median(outside)


def test_other_streams_carry_no_incident_signature(day: Counts) -> None:
    labelled = {i.stream for i in day.sim.labels}
    quiet = [i for i, s in enumerate(day.sim.streams) if s not in labelled]
    assert quiet, "8 streams, 6 incidents: two streams stay clean"
    held = day.data[quiet][:, :, KIND_INDEX["JobHeldEvent"]]
    assert held.max() < 8


# --------------------------------------------------------------------------- live mode


def test_endless_run_yields_lazily_and_cycles_incident_kinds() -> None:
    config = SimulationConfig(
        streams=3,
        duration=None,
        window=60.0,
        incidents=("outage", "hold_storm"),
        incident_every=900.0,
        warmup=600.0,
        seed=4,
    )
    sim = Simulation(config)
    assert sim.labels == []
    began = time.perf_counter()
    first = list(itertools.islice(sim.events(), 2000))
    assert time.perf_counter() - began < 5.0
    assert len(first) == 2000 and all(a.ts <= b.ts for a, b in itertools.pairwise(first))
    assert first[-1].ts < config.start + 2 * HOUR

    horizon = config.start + 3 * HOUR
    events = list(sim.events(until=horizon))
    assert events[-1].ts < horizon
    labels = [i for i in sim.labels if i.end <= horizon]
    assert [i.kind for i in labels[:4]] == ["outage", "hold_storm", "outage", "hold_storm"]
    assert labels[0].start == config.start + 600.0
    for before, after in itertools.pairwise(labels):
        assert after.start - before.start == 900.0 and before.end <= after.start
    for outage in (i for i in labels if i.kind == "outage"):
        assert not [
            ev for ev in events if ev.stream == outage.stream and outage.start <= ev.ts < outage.end
        ]


def test_endless_run_labels_align_to_epoch_windows_when_start_is_not() -> None:
    config = SimulationConfig(
        streams=2,
        start=DEFAULT_START + 12.345,
        duration=None,
        incidents=("submit_flood",),
        incident_every=600.0,
        warmup=0.0,
        seed=1,
    )
    sim = Simulation(config)
    events = list(sim.events(until=config.start + HOUR))
    assert events[0].ts >= config.start
    assert sim.labels and all(i.start % 60 == 0 and i.end % 60 == 0 for i in sim.labels)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"streams": 0}, "streams"),
        ({"streams": True}, "streams"),
        ({"start": 0.0}, "start"),
        ({"duration": -1.0}, "duration"),
        ({"duration": float("inf")}, "duration"),
        ({"window": 0.0}, "window"),
        ({"window": 2 * DAY}, "window"),
        ({"incidents": ("outage", "meteor")}, "incidents"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"rate": 0.0}, "rate"),
        ({"prefix": ""}, "prefix"),
        ({"prefix": "schedd sim"}, "prefix"),
        ({"warmup": -1.0}, "warmup"),
        ({"incident_every": 600.0}, "incident_every"),
        ({"incidents": ("outage",), "incident_every": 30.0}, "incident_every"),
        ({"incidents": ("outage",), "duration": None}, "incident_every"),
        ({"incidents": ("outage",), "duration": 2 * HOUR}, "duration"),
    ],
)
def test_bad_config_is_one_line_naming_the_field(changes: dict, field: str) -> None:
    settings = {"streams": 4, "duration": DAY, "window": 60.0} | changes
    with pytest.raises(ValueError) as caught:
        SimulationConfig(**settings)
    message = str(caught.value)
    assert message.startswith(f"{field}: expects ")
    assert "\n" not in message


def test_unknown_incident_kind_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="meteor") as caught:
        SimulationConfig(incidents=("meteor",))
    assert all(kind in str(caught.value) for kind in INCIDENT_KINDS)


def test_incidents_may_be_a_comma_separated_string() -> None:
    config = SimulationConfig(streams=3, incidents="outage, hold_storm")  # type: ignore[arg-type]
    assert config.incidents == ("outage", "hold_storm")
