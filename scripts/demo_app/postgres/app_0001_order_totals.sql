-- Create order_totals, the demo application's read model: one row per order with its running total, written by the OrderTotals projection.

CREATE TABLE order_totals (
    order_id    text    NOT NULL,
    total       bigint  NOT NULL DEFAULT 0,
    lines       integer NOT NULL DEFAULT 0,
    CONSTRAINT pk_order_totals PRIMARY KEY (order_id),
    CONSTRAINT ck_order_totals_lines_not_negative CHECK (lines >= 0)
);
