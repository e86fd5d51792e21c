-- Run priorities: workers claim runnable runs by priority (higher first), then by age.
ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
