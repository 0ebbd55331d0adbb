-- The verdict is kept as the bytes published on reports.outcomes.v1, as reports.body keeps
-- what was received: jsonb parsed every verdict on its way in (about half the cost of the
-- row), only to be read back whole. `convert_from(outcome, 'UTF8')::jsonb` reads it as JSON.
ALTER TABLE verdicts ALTER COLUMN outcome TYPE bytea USING convert_to(outcome::text, 'UTF8');
