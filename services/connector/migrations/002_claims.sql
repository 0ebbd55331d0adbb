-- A delivery in flight is now claimed with a PostgreSQL advisory lock held by the
-- connection that sends it: a crashed instance's claims end with its connection, instead
-- of blocking the scope until a lease runs out. The outcome and time of the last attempt
-- are kept for the operators' listing.
ALTER TABLE deliveries DROP COLUMN lease_until;
ALTER TABLE deliveries ADD COLUMN last_outcome text;
ALTER TABLE deliveries ADD COLUMN last_attempt_at timestamptz;
