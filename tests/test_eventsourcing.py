"""evstore.eventsourcing against the eventsourcing library's own recorder test cases, on SQLite
and PostgreSQL (each test on a fresh database file or schema), and the mapping both ways."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

import psycopg
import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    IntegrityError,
    ProcessRecorder,
    StoredEvent,
    Tracking,
    TrackingRecorder,
)
from eventsourcing.system import ProcessApplication, SingleThreadedRunner, System
from eventsourcing.tests.application import ExampleApplicationTestCase
from eventsourcing.tests.persistence import (
    AggregateRecorderTestCase,
    ApplicationRecorderTestCase,
    InfrastructureFactoryTestCase,
    NonInterleavingNotificationIDsBaseCase,
    ProcessRecorderTestCase,
    TrackingRecorderTestCase,
)
from eventsourcing.utils import Environment
from psycopg import sql

import evstore
from evstore.cli import main as cli_main
from evstore.integrations.eventsourcing import (
    EvstoreAggregateRecorder,
    EvstoreApplicationRecorder,
    EvstoreFactory,
    EvstoreProcessRecorder,
    EvstoreTrackingRecorder,
    state_document,
    state_of,
)
from evstore.operations.verify import verify
from evstore.urls import parse_url
from tests.conftest import ROOT, require_pg, scratch_database

# -- one database per module on PostgreSQL, one schema per test -----------------------------

_module: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def _module_database() -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        _module["stack"] = stack
        yield
    _module.clear()


def pg_database() -> str:
    """The module's scratch database (created on first use, dropped after the module)."""
    if "url" not in _module:
        _module["url"] = _module["stack"].enter_context(scratch_database("evstore_es"))
    return str(_module["url"])


class Backend:
    """A fresh evstore database for each test: a SQLite file, or a PostgreSQL schema."""

    dialect: ClassVar[str]
    es_url: str
    es_schema: str | None

    def _open(self) -> None:
        self._factories: list[EvstoreFactory] = []
        self._cleanup = contextlib.ExitStack()
        if self.dialect == "sqlite":
            import tempfile

            folder = self._cleanup.enter_context(tempfile.TemporaryDirectory())
            self.es_url, self.es_schema = f"sqlite:///{folder}/es.db", None
        else:
            self.es_url = pg_database()
            self.es_schema = f"es_{uuid.uuid4().hex[:12]}"
            self._cleanup.callback(_drop_schema, self.es_url, self.es_schema)

    def _close(self) -> None:
        for factory in self._factories:
            factory.close()
        self._cleanup.close()

    def settings(self) -> dict[str, str]:
        env = {"PERSISTENCE_MODULE": "evstore.eventsourcing", "EVSTORE_DATABASE_URL": self.es_url}
        if self.es_schema:
            env["EVSTORE_SCHEMA"] = self.es_schema
        return env

    def factory(self) -> EvstoreFactory:
        factory = EvstoreFactory(Environment(env=self.settings()))
        self._factories.append(factory)
        return factory

    def setUp(self) -> None:
        self._open()
        super().setUp()  # type: ignore[misc]

    def tearDown(self) -> None:
        super().tearDown()  # type: ignore[misc]
        self._close()


def _drop_schema(url: str, schema: str) -> None:
    conninfo = parse_url(url).conninfo
    assert conninfo is not None
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


class SQLite(Backend):
    dialect = "sqlite"


class Postgres(Backend):
    dialect = "postgres"

    def _open(self) -> None:
        require_pg()
        super()._open()


# -- eventsourcing's own recorder test cases -------------------------------------------------


class AggregateRecorderCases(AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        return self.factory().aggregate_recorder()  # type: ignore[attr-defined, no-any-return]


class ApplicationRecorderCases(ApplicationRecorderTestCase[ApplicationRecorder]):
    def create_recorder(self) -> ApplicationRecorder:
        return self.factory().application_recorder()  # type: ignore[attr-defined, no-any-return]

    def test_insert_subscribe(self) -> None:
        self.optional_test_insert_subscribe()


class TrackingRecorderCases(TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        return self.factory().tracking_recorder()  # type: ignore[attr-defined, no-any-return]


class ProcessRecorderCases(ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        return self.factory().process_recorder()  # type: ignore[attr-defined, no-any-return]


class NonInterleavingCases(NonInterleavingNotificationIDsBaseCase):
    def create_recorder(self) -> ApplicationRecorder:
        return self.factory().application_recorder()  # type: ignore[attr-defined, no-any-return]


class MyTrackingRecorder(EvstoreTrackingRecorder):
    """A view's recorder, as an application would subclass it."""


class FactoryCases(InfrastructureFactoryTestCase[EvstoreFactory]):
    def setUp(self) -> None:  # after Backend.setUp has made the database
        self.env = Environment("TestCase", self.settings())  # type: ignore[attr-defined]
        super().setUp()

    def expected_factory_class(self) -> type[EvstoreFactory]:
        return EvstoreFactory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return EvstoreAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return EvstoreApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return EvstoreTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return MyTrackingRecorder

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return EvstoreProcessRecorder


class ExampleApplicationCases(ExampleApplicationTestCase):
    """eventsourcing's BankAccounts example, configured through os.environ as its own test
    suite does; the factories it makes are closed afterwards."""

    expected_factory_topic = "evstore.integrations.eventsourcing:EvstoreFactory"

    def setUp(self) -> None:  # after Backend.setUp has made the database
        patcher = mock.patch.dict(os.environ, self.settings())  # type: ignore[attr-defined]
        patcher.start()
        self._cleanup.callback(patcher.stop)  # type: ignore[attr-defined]
        made = self._factories  # type: ignore[attr-defined]
        original = EvstoreFactory.__init__

        def init(factory: EvstoreFactory, env: Any) -> None:
            original(factory, env)
            made.append(factory)

        tracker = mock.patch.object(EvstoreFactory, "__init__", init)
        tracker.start()
        self._cleanup.callback(tracker.stop)  # type: ignore[attr-defined]
        super().setUp()


class TestSQLiteAggregateRecorder(SQLite, AggregateRecorderCases):
    pass


class TestSQLiteApplicationRecorder(SQLite, ApplicationRecorderCases):
    pass


class TestSQLiteTrackingRecorder(SQLite, TrackingRecorderCases):
    pass


class TestSQLiteProcessRecorder(SQLite, ProcessRecorderCases):
    pass


class TestSQLiteNonInterleaving(SQLite, NonInterleavingCases):
    pass


class TestSQLiteFactory(SQLite, FactoryCases):
    pass


class TestSQLiteExampleApplication(SQLite, ExampleApplicationCases):
    pass


@pytest.mark.postgres
class TestPostgresAggregateRecorder(Postgres, AggregateRecorderCases):
    pass


@pytest.mark.postgres
class TestPostgresApplicationRecorder(Postgres, ApplicationRecorderCases):
    pass


@pytest.mark.postgres
class TestPostgresTrackingRecorder(Postgres, TrackingRecorderCases):
    pass


@pytest.mark.postgres
class TestPostgresProcessRecorder(Postgres, ProcessRecorderCases):
    pass


@pytest.mark.postgres
class TestPostgresNonInterleaving(Postgres, NonInterleavingCases):
    pass


@pytest.mark.postgres
class TestPostgresFactory(Postgres, FactoryCases):
    pass


@pytest.mark.postgres
class TestPostgresExampleApplication(Postgres, ExampleApplicationCases):
    pass


del AggregateRecorderCases, ApplicationRecorderCases, TrackingRecorderCases
del ProcessRecorderCases, NonInterleavingCases, FactoryCases, ExampleApplicationCases
del AggregateRecorderTestCase, ApplicationRecorderTestCase, TrackingRecorderTestCase
del ProcessRecorderTestCase, NonInterleavingNotificationIDsBaseCase
del InfrastructureFactoryTestCase, ExampleApplicationTestCase


# -- an application on evstore: the mapping, both ways ---------------------------------------


class Dog(Aggregate):
    @event("Registered")
    def __init__(self, name: str) -> None:
        self.name = name
        self.tricks: list[str] = []

    @event("TrickAdded")
    def add_trick(self, trick: str) -> None:
        self.tricks.append(trick)


class DogSchool(Application[uuid.UUID]):
    snapshotting_intervals: ClassVar[dict[type[Aggregate], int]] = {Dog: 2}

    def register_dog(self, name: str) -> uuid.UUID:
        dog = Dog(name)
        self.save(dog)
        return dog.id

    def add_trick(self, dog_id: uuid.UUID, trick: str) -> None:
        dog: Dog = self.repository.get(dog_id)
        dog.add_trick(trick)
        self.save(dog)

    def tricks(self, dog_id: uuid.UUID) -> list[str]:
        dog: Dog = self.repository.get(dog_id)
        return dog.tricks


class Puppy(Aggregate):
    """An aggregate whose versions start at 0."""

    INITIAL_VERSION = 0

    @event("Born")
    def __init__(self, name: str) -> None:
        self.name = name
        self.naps = 0

    @event("Napped")
    def nap(self) -> None:
        self.naps += 1


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """PERSISTENCE_MODULE and the evstore settings for a fresh database."""
    env = {"PERSISTENCE_MODULE": "evstore.eventsourcing"}
    if request.param == "sqlite":
        env["EVSTORE_DATABASE_URL"] = f"sqlite:///{tmp_path}/es.db"
        yield env
    else:
        with scratch_database("evstore_es") as url:
            env["EVSTORE_DATABASE_URL"] = url
            yield env


@contextlib.contextmanager
def running(app_class: type[Application[Any]], settings: dict[str, str],
            **extra: str) -> Iterator[Any]:
    app = app_class(env={**settings, **extra})
    try:
        yield app
    finally:
        app.close()


def test_dog_school_events_snapshots_and_byte_states(settings: dict[str, str]) -> None:
    with running(DogSchool, settings) as school:
        dog_id = school.register_dog("Fido")
        for trick in ("roll over", "play dead", "fetch"):
            school.add_trick(dog_id, trick)
        assert school.tricks(dog_id) == ["roll over", "play dead", "fetch"]
        # Every state comes back byte for byte: the recorder's events, the notifications.
        recorder = school.recorder
        stored = recorder.select_events(dog_id)
        assert [s.originator_version for s in stored] == [1, 2, 3, 4]
        mapped = [school.mapper.to_stored_event(e) for e in school.events.get(dog_id)]
        assert [s.state for s in stored] == [m.state for m in mapped]
        notifications = recorder.select_notifications(None, 10)
        assert [n.id for n in notifications] == [1, 2, 3, 4]
        assert [n.state for n in notifications] == [s.state for s in stored]
        # Snapshots every 2 versions, in evstore's snapshot table.
        snapshots = list(school.snapshots.get(dog_id))  # type: ignore[union-attr]
        assert [s.originator_version for s in snapshots] == [2, 4]
        assert school.repository.get(dog_id, version=3).tricks == ["roll over", "play dead"]
    # evstore's own API sees real documents: JSON states are JSON, not bytes.
    with evstore.connect(settings["EVSTORE_DATABASE_URL"]) as store:
        events = store.read_stream(str(dog_id))
        assert [e.type for e in events] == [
            "tests.test_eventsourcing:Dog.Registered",
            *["tests.test_eventsourcing:Dog.TrickAdded"] * 3,
        ]
        assert events[0].data["name"] == "Fido"
        assert events[1].data["trick"] == "roll over"
        assert all(e.metadata == {} for e in events)  # canonical JSON: no state_text
        snapshot = store.load_snapshot(str(dog_id))
        assert snapshot is not None and snapshot.version == 4
        assert snapshot.state["topic"] == "eventsourcing.domain:Snapshot"
        assert snapshot.state["state"]["state"]["tricks"] == ["roll over", "play dead", "fetch"]
        assert verify(store).findings == []


def test_encrypted_and_compressed_states_use_the_bytes_envelope(
    settings: dict[str, str],
) -> None:
    from eventsourcing.cipher import AESCipher

    extra = {"CIPHER_KEY": AESCipher.create_key(16), "COMPRESSOR_TOPIC": "zlib"}
    with running(DogSchool, settings, **extra) as school:
        dog_id = school.register_dog("Rex")
        school.add_trick(dog_id, "sit")
        school.add_trick(dog_id, "stay")
        assert school.tricks(dog_id) == ["sit", "stay"]
        stored = school.recorder.select_events(dog_id)
        mapped = [school.mapper.to_stored_event(e) for e in school.events.get(dog_id)]
        assert len(stored) == 3
        # AES-GCM is randomised: decrypting the stored bytes gives the mapped state's plaintext.
        cipher, compressor = school.mapper.cipher, school.mapper.compressor
        assert cipher is not None and compressor is not None
        plain = [compressor.decompress(cipher.decrypt(s.state)) for s in stored]
        assert plain == [compressor.decompress(cipher.decrypt(m.state)) for m in mapped]
    with evstore.connect(settings["EVSTORE_DATABASE_URL"]) as store:
        events = store.read_stream(str(dog_id))
        assert all(type(e.data) is bytes for e in events)
        assert [e.data for e in events] == [s.state for s in stored]
        column = store.execute("SELECT payload FROM event_store ORDER BY position LIMIT 1")[0][0]
        document = column if isinstance(column, dict) else json.loads(column)
        assert list(document) == ["$bytes"]


def test_non_canonical_json_keeps_its_exact_text(settings: dict[str, str]) -> None:
    # eventsourcing's own transcoder writes keys unsorted: the document is stored, and the
    # exact text in the metadata, so the state still comes back byte for byte.
    extra = {"TRANSCODER_TOPIC": "eventsourcing.persistence:JSONTranscoder"}
    with running(DogSchool, settings, **extra) as school:
        dog_id = school.register_dog("Ace")
        school.add_trick(dog_id, "beg")
        stored = school.recorder.select_events(dog_id)
        mapped = [school.mapper.to_stored_event(e) for e in school.events.get(dog_id)]
        assert [s.state for s in stored] == [m.state for m in mapped]
        assert school.tricks(dog_id) == ["beg"]
    with evstore.connect(settings["EVSTORE_DATABASE_URL"]) as store:
        events = store.read_stream(str(dog_id))
        assert events[1].data["trick"] == "beg"
        assert events[1].metadata["state_text"].encode() == stored[1].state


STATES = [
    b'{"a":1,"b":[true,null,"\\u00e9t\xc3\xa9"]}',
    b'{"b":1,"a":2}',
    b' {"a": 1}',
    b'"just a string"',
    b"12.5",
    b'{"x":1e+16}',
    b"NaN",
    b'{"nul":"\\u0000"}',
    b"\xff\xfe not UTF-8",
    b"",
    b"[]",
    b'["\\ud800"]',
    b"[" * 300 + b"]" * 300,
    b"1e400",
]


@pytest.mark.parametrize("state", STATES)
def test_state_mapping_is_exact(state: bytes) -> None:
    data, metadata = state_document(state)
    assert state_of(evstore.events.from_document(evstore.events.as_document(data)),
                    metadata) == state
    not_json = (b"NaN", b'{"nul":"\\u0000"}', b"\xff\xfe not UTF-8", b"", b'["\\ud800"]',
                b"[" * 300 + b"]" * 300, b"1e400")
    assert (type(data) is bytes) == (state in not_json)


def test_every_kind_of_state_round_trips_through_the_store(settings: dict[str, str]) -> None:
    factory = EvstoreFactory(Environment(env=settings))
    try:
        recorder = factory.application_recorder()
        ids = [uuid.uuid4() for _ in STATES]
        recorder.insert_events([StoredEvent(i, 1, "T", s)
                                for i, s in zip(ids, STATES, strict=True)])
        assert [recorder.select_events(i)[0].state for i in ids] == STATES
        assert [n.state for n in recorder.select_notifications(None, 100)] == STATES
    finally:
        factory.close()


def test_version_zero_aggregates(settings: dict[str, str]) -> None:
    class Nursery(Application[uuid.UUID]):
        snapshotting_intervals: ClassVar[dict[type[Aggregate], int]] = {Puppy: 2}

    with running(Nursery, settings) as nursery:
        puppy = Puppy("Bo")
        nursery.save(puppy)  # version 0: no snapshot is stored for it
        for _ in range(3):
            puppy.nap()
        nursery.save(puppy)
        assert [s.originator_version for s in nursery.recorder.select_events(puppy.id)] == [
            0, 1, 2, 3]
        assert [s.originator_version
                for s in nursery.snapshots.get(puppy.id)] == [2]  # type: ignore[union-attr]
        assert nursery.repository.get(puppy.id).naps == 3
        assert nursery.repository.get(puppy.id, version=0).naps == 0
    with evstore.connect(settings["EVSTORE_DATABASE_URL"]) as store:
        assert [e.version for e in store.read_stream(str(puppy.id))] == [0, 1, 2, 3]
        assert verify(store).findings == []


def test_events_written_through_eventsourcing_read_with_evstore_cli(
    settings: dict[str, str], capsys: pytest.CaptureFixture[str],
) -> None:
    with running(DogSchool, settings) as school:
        dog_id = school.register_dog("Fido")
        school.add_trick(dog_id, "sit")
    url = settings["EVSTORE_DATABASE_URL"]
    assert cli_main(["read", "--database", url, "--stream", str(dog_id), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["version"], e["type"]) for e in lines] == [
        (1, "tests.test_eventsourcing:Dog.Registered"),
        (2, "tests.test_eventsourcing:Dog.TrickAdded"),
    ]
    assert lines[0]["data"]["name"] == "Fido" and lines[1]["data"]["trick"] == "sit"
    assert lines[0]["stream_id"] == str(dog_id)


def test_events_written_through_evstore_read_by_eventsourcing(settings: dict[str, str]) -> None:
    with running(DogSchool, settings) as school:
        template_id = school.register_dog("Template")
        school.add_trick(template_id, "sit")
        states = [json.loads(s.state) for s in school.recorder.select_events(template_id)]
    # Another service appends a dog through evstore's own API, in the same event types.
    dog_id = uuid.uuid4()
    states[0]["name"] = "Written by evstore"
    states[1]["trick"] = "jump"
    with evstore.connect(settings["EVSTORE_DATABASE_URL"]) as store:
        store.append(str(dog_id), [
            evstore.NewEvent("tests.test_eventsourcing:Dog.Registered", states[0], version=1),
            evstore.NewEvent("tests.test_eventsourcing:Dog.TrickAdded", states[1], version=2),
        ])
        store.append("order-1", [evstore.NewEvent("Placed", {"total": 3})])
    with running(DogSchool, settings) as school:
        dog: Dog = school.repository.get(dog_id)
        assert (dog.name, dog.tricks, dog.version) == ("Written by evstore", ["jump"], 2)
        # The notification log carries every event of the log, evstore's own included.
        notifications = school.recorder.select_notifications(None, 10)
        assert [n.originator_id for n in notifications][-3:] == [dog_id, dog_id, "order-1"]
        assert notifications[-1].state == b'{"total":3}'
        assert notifications[-1].topic == "Placed"
        # A topic filter reads one type through evstore's (event_type, position) index.
        placed = school.recorder.select_notifications(None, 10, topics=["Placed"])
        assert [n.id for n in placed] == [notifications[-1].id]


class Counters(ProcessApplication[uuid.UUID]):
    """Counts tricks, following DogSchool (its tracking records are evstore checkpoints)."""

    def policy(self, domain_event: Any, processing_event: Any) -> None:
        if isinstance(domain_event, Dog.TrickAdded):
            counter = TrickCounter(domain_event.trick)
            processing_event.collect_events(counter)


class TrickCounter(Aggregate):
    @event("Counted")
    def __init__(self, trick: str) -> None:
        self.trick = trick


def test_process_application_tracks_in_subscription(tmp_path: Path) -> None:
    # One evstore database per application of the system: each is one log.
    os_env = {
        "PERSISTENCE_MODULE": "evstore.eventsourcing",
        "DOGSCHOOL_EVSTORE_DATABASE_URL": f"sqlite:///{tmp_path}/school.db",
        "COUNTERS_EVSTORE_DATABASE_URL": f"sqlite:///{tmp_path}/counters.db",
    }
    runner = SingleThreadedRunner(System(pipes=[[DogSchool, Counters]]), env=os_env)
    runner.start()
    try:
        school = runner.get(DogSchool)
        dog_id = school.register_dog("Fido")
        school.add_trick(dog_id, "sit")
        school.add_trick(dog_id, "roll")
        counters = runner.get(Counters)
        assert [n.topic for n in counters.recorder.select_notifications(None, 10)] == [
            "tests.test_eventsourcing:TrickCounter.Counted"] * 2
        assert counters.recorder.max_tracking_id("DogSchool") == 3  # type: ignore[attr-defined]
    finally:
        runner.stop()
    with evstore.connect(f"sqlite:///{tmp_path}/counters.db") as store:
        assert store.checkpoint("DogSchool") == 3


def test_two_process_recorders_race_for_one_tracking_id(settings: dict[str, str]) -> None:
    """The gap the issue names: two process recorders must not both accept a tracking id."""
    factories = [EvstoreFactory(Environment(env=settings)) for _ in range(2)]
    try:
        recorders = [f.process_recorder() for f in factories]
        def insert(recorder: ProcessRecorder, who: int, n: int, start: threading.Barrier,
                   outcomes: list[str]) -> None:
            state = json.dumps({"round": n, "by": who}).encode()
            events = [StoredEvent(uuid.uuid4(), 1, "Handled", state)]
            start.wait(timeout=30)
            try:
                recorder.insert_events(events, tracking=Tracking("Upstream", n))
                outcomes.append("won")
            except IntegrityError:
                outcomes.append("lost")

        for round_ in range(1, 21):
            start = threading.Barrier(2)
            outcomes: list[str] = []
            threads = [threading.Thread(target=insert, args=(r, i, round_, start, outcomes))
                       for i, r in enumerate(recorders)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            assert sorted(outcomes) == ["lost", "won"], f"round {round_}: {outcomes}"
        handled = recorders[0].select_notifications(None, 100)  # type: ignore[attr-defined]
        assert [json.loads(n.state)["round"] for n in handled] == list(range(1, 21))
        assert recorders[1].max_tracking_id("Upstream") == 20
    finally:
        for f in factories:
            f.close()


def test_factory_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="EVSTORE_DATABASE_URL"):
        EvstoreFactory(Environment("DogSchool", {}))
    with pytest.raises(OSError, match="uuid"):
        EvstoreFactory(Environment(env={"EVSTORE_DATABASE_URL": "sqlite:///:memory:",
                                        "ORIGINATOR_ID_TYPE": "int"}))
    with pytest.raises(OSError, match="schemas exist only on PostgreSQL"):
        EvstoreFactory(Environment(env={"EVSTORE_DATABASE_URL": "sqlite:///:memory:",
                                        "EVSTORE_SCHEMA": "x"}))
    with pytest.raises(OSError, match="EVSTORE_LOCK_TIMEOUT"):
        EvstoreFactory(Environment(env={"EVSTORE_DATABASE_URL": "sqlite:///:memory:",
                                        "EVSTORE_LOCK_TIMEOUT": "soon"}))
    with pytest.raises(OSError, match="not-a-scheme"):
        EvstoreFactory(Environment(env={"EVSTORE_DATABASE_URL": "not-a-scheme://x"}))
    # The application's own prefix wins, as with eventsourcing's settings.
    factory = EvstoreFactory(Environment("DogSchool", {
        "EVSTORE_DATABASE_URL": "sqlite:///:memory:",
        "DOGSCHOOL_EVSTORE_DATABASE_URL": f"sqlite:///{tmp_path}/dogs.db",
    }))
    try:
        assert factory.datastore.store.url.sqlite_path == f"{tmp_path}/dogs.db"
    finally:
        factory.close()
    assert InfrastructureFactory  # the module resolves through PERSISTENCE_MODULE below
    env = Environment(env={"PERSISTENCE_MODULE": "evstore.eventsourcing",
                           "EVSTORE_DATABASE_URL": "sqlite:///:memory:"})
    constructed = InfrastructureFactory.construct(env)
    try:
        assert type(constructed) is EvstoreFactory
    finally:
        constructed.close()


def test_example_script_runs(settings: dict[str, str]) -> None:
    env = {**os.environ, "EVSTORE_DATABASE_URL": settings["EVSTORE_DATABASE_URL"]}
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "es_example.py")],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Fido: roll over, play dead" in done.stdout
    assert "Registered" in done.stdout and "TrickAdded" in done.stdout
