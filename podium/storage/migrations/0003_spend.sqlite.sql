-- Dollars spent on model calls, per flow and UTC day (for per-flow daily budgets and cost reports).
CREATE TABLE spend (
    flow TEXT NOT NULL,
    day  TEXT NOT NULL,
    cost REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (flow, day)
);
