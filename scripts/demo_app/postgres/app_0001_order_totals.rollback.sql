-- Drop order_totals; a replay of the OrderTotals projection rebuilds it.
DROP TABLE order_totals;
