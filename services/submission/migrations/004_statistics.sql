-- Never filtered or joined on: no planner statistics, so ANALYZE of these growing tables
-- does not read back every sampled report and verdict in full.
ALTER TABLE reports ALTER COLUMN body SET STATISTICS 0;
ALTER TABLE verdicts ALTER COLUMN outcome SET STATISTICS 0;
