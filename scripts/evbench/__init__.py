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
  W6 growth         (evstore) W1's append rate, a read from the start and from the middle,
                    a replay's peak memory and the event table's bytes per event, on W1's
                    log and again once it holds 1,000,000 events (--w6-10m: PostgreSQL,
                    10,000,000 against 100,000).
  W7 latency        commit to tail delivery and commit to projection checkpoint, p50, p99
                    and max in ms, with the log idle and under 4 W5-style writers.
  W8 scaling        1, 2, 4, 8 writer processes (with a follower) and 1, 4, 8 reader
                    processes: events/s, and the no-skip check (every committed event
                    delivered exactly once, in order) at each point.
  WT threads        1, 4, 8 threads sharing one Store (one recorder, one raw client) doing
                    batch appends; and evstore.aio with 1, 4, 8 tasks once it exists.

Systems: evstore-sqlite, evstore-postgres; raw-sqlite and raw-postgres (the driver alone doing
the same inserts into evstore's own tables, the baseline); es-sqlite and es-postgres (the
eventsourcing library's application recorders, when `pip install -e '.[bench]'` put it there),
and es-sqlite-bytes, es-postgres-bytes (the same handed pre-encoded bytes: its limit).
Each (system, repetition, point) gets a fresh database. Results: a table of medians with min
and max, evstore's ratios to the raw driver, to eventsourcing and to eventsourcing handed bytes
(above 1: evstore did better), and with --json every single measurement.

  --compare OLD.json NEW.json [--threshold PCT]   exit 1 when a ratio dropped by more than PCT
  --plot DIR [--from RUN.json]                    PNG charts of this run or of a saved one
"""
