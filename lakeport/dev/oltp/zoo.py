"""A table of every PostgreSQL type the issues name, at its edges: decimals beyond 28 and 38
digits, scale above precision, a negative scale, numeric without precision, times, intervals,
arrays, uuid, bytea. Used to record the real connector's output (``scripts/record_debezium_fixtures.py``)
and to check that ``lakeport capture`` lands the same values.
"""

from __future__ import annotations

ZOO = """
CREATE TABLE zoo (id int PRIMARY KEY, big numeric(41,2), wide numeric(38,2), tiny numeric(5,6),
  rounded numeric(5,-2), free numeric, t time, tz timetz, span interval, blob bytea, u uuid, doc jsonb,
  tags text[], nums int[], at timestamptz, day date, flag boolean, r real, d double precision,
  s smallint, c char(3), v varchar(20));
INSERT INTO zoo VALUES
  (1, 123456789012345678901234567890123456789.25, 123456789012345678901234567890123456.78, 0.012345,
   1234500, -12.345000000000000000000000000000001, '13:45:07.123456', '13:45:07.5+02',
   '1 day 01:02:03.000004', '\\x00ff10', gen_random_uuid(), '{"a": [1, 2]}', '{x,y}', '{1,2,3}',
   '2026-01-02 03:04:05.678901+00', '2026-01-02', true, 1.5, 2.25, 7, 'EUR', 'hello'),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL);
"""
ZOO_LATER = """
INSERT INTO zoo VALUES (3, -99999999999999999999999999999999999999.99, -0.01, 0.000001, -100, 1e-40,
  '00:00:00', '23:59:59.999999-05', '-3 days 00:00:00.5', '\\x', gen_random_uuid(), '[]', '{}', '{-1}',
  '1970-01-01 00:00:00+00', '1970-01-01', false, -0.25, 1e300, -32768, 'X', '');
UPDATE zoo SET free = 3.14159265358979323846264338327950288419716939937510, span = '12:00:00' WHERE id = 1;
DELETE FROM zoo WHERE id = 2;
"""
