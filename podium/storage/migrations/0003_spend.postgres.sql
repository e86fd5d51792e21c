-- Dollars spent on model calls, per flow and UTC day (for per-flow daily budgets and cost reports).
CREATE TABLE spend (
    flow TEXT COLLATE "C" NOT NULL,
    day  TEXT COLLATE "C" NOT NULL,
    cost DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (flow, day)
);
