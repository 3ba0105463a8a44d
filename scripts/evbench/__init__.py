"""Benchmark evstore beside the raw drivers and the eventsourcing library, in one run.

Every system runs the same workloads on the same pre-generated events:

  W1 batch append   N events over S new streams, B consecutive events per append, each with an
                    expected-version check. Events/s.
  W2 single append  M events, one per append, expected version checked, round robin over
                    100 streams that W1 created. Events/s.
  W3 read all       every event in global order, pages of 1,000, data decoded. Events/s.
  W4 read stream    every W1 stream read fully, in shuffled order. Streams/s.
  W5 (PostgreSQL)   4 writer processes append batches of 10 to their own streams for 10 s
                    while a tailer follows the log. Events/s, and committed events the
                    tailer never delivered.
  W6 growth         W1's append rate and a read from the middle, again once the log holds
                    1,000,000 events; peak memory of a replay of the whole log.

Systems: evstore-sqlite, evstore-postgres; raw-sqlite and raw-postgres (the driver alone doing
the same inserts into evstore's own tables, the baseline); es-sqlite and es-postgres (the
eventsourcing library's application recorders, when `pip install -e '.[bench]'` put it there).
Each (system, repetition) gets a fresh database. Results: a table of medians with min and max,
the ratios to the baseline, and with --json every single measurement.
"""
