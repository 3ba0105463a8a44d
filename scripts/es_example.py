"""The eventsourcing library's dog school, stored in evstore.

An ordinary eventsourcing Application; the only evstore part is the environment:

    PERSISTENCE_MODULE=evstore.eventsourcing
    EVSTORE_DATABASE_URL=sqlite:///es_example.db      (or postgresql://app@db/app)
    EVSTORE_SCHEMA=dogschool                          (PostgreSQL, optional)

Then it reads the same events back with evstore's own API, as any other evstore reader would.

    python scripts/es_example.py
    EVSTORE_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres python scripts/es_example.py
"""

from __future__ import annotations

import argparse
import json
import os
from typing import ClassVar
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

import evstore
from evstore.urls import redact


class Dog(Aggregate):
    @event("Registered")
    def __init__(self, name: str) -> None:
        self.name = name
        self.tricks: list[str] = []

    @event("TrickAdded")
    def add_trick(self, trick: str) -> None:
        self.tricks.append(trick)


class DogSchool(Application[UUID]):
    snapshotting_intervals: ClassVar[dict[type[Aggregate], int]] = {Dog: 3}

    def register_dog(self, name: str) -> UUID:
        dog = Dog(name)
        self.save(dog)
        return dog.id

    def add_trick(self, dog_id: UUID, trick: str) -> None:
        dog: Dog = self.repository.get(dog_id)
        dog.add_trick(trick)
        self.save(dog)

    def get_dog(self, dog_id: UUID) -> dict[str, object]:
        dog: Dog = self.repository.get(dog_id)
        return {"name": dog.name, "tricks": list(dog.tricks)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", help="evstore URL (default: EVSTORE_DATABASE_URL, "
                        "else sqlite:///es_example.db)")
    parser.add_argument("--schema", help="PostgreSQL schema (default: EVSTORE_SCHEMA)")
    args = parser.parse_args()
    os.environ["PERSISTENCE_MODULE"] = "evstore.eventsourcing"
    if args.database:
        os.environ["EVSTORE_DATABASE_URL"] = args.database
    os.environ.setdefault("EVSTORE_DATABASE_URL", "sqlite:///es_example.db")
    if args.schema:
        os.environ["EVSTORE_SCHEMA"] = args.schema
    url = os.environ["EVSTORE_DATABASE_URL"]
    print(f"evstore database: {redact(url)}")

    school = DogSchool()  # reads PERSISTENCE_MODULE and EVSTORE_* from the environment
    try:
        dog_id = school.register_dog("Fido")
        school.add_trick(dog_id, "roll over")
        school.add_trick(dog_id, "play dead")
        dog = school.get_dog(dog_id)
        print(f"{dog['name']}: {', '.join(dog['tricks'])}")  # type: ignore[arg-type]
    finally:
        school.close()

    # The same events, read by evstore's own API (`evstore read --stream ID` prints them too).
    with evstore.connect(url, schema=os.environ.get("EVSTORE_SCHEMA") or None) as store:
        for e in store.read_stream(str(dog_id)):
            print(f"  {e.position} {e.stream_id}@{e.version} {e.type.rsplit('.', 1)[-1]} "
                  f"{json.dumps(e.data, sort_keys=True)[:80]}")
        snapshot = store.load_snapshot(str(dog_id))
        if snapshot is not None:
            print(f"  snapshot at version {snapshot.version}: "
                  f"tricks {snapshot.state['state']['state']['tricks']}")


if __name__ == "__main__":
    main()
