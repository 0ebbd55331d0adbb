-- The body of every version stored, not only of the latest, so an audit can read any of
-- them back. Versions stored before this migration have none (null).
ALTER TABLE received ADD COLUMN body jsonb;
