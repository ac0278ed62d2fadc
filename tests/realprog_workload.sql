-- realprog_workload.sql - a deterministic sqlite3 session: tables, bulk
-- inserts, indexes, joins, aggregates, an update and a delete.
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, val REAL);
CREATE TABLE g(grp INTEGER PRIMARY KEY, label TEXT);
WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 20000)
INSERT INTO t(name, grp, val) SELECT printf('name-%05d-%s', x, hex(x * 7)), x % 97, (x * 37 % 1000) / 10.0 FROM n;
WITH RECURSIVE n(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM n WHERE x < 96)
INSERT INTO g SELECT x, 'group ' || x FROM n;
CREATE INDEX t_grp ON t(grp, val);
CREATE INDEX t_name ON t(name);
SELECT count(*), round(sum(val), 1), min(name), max(name) FROM t;
SELECT g.label, count(*), round(avg(t.val), 3) FROM t JOIN g USING (grp) GROUP BY grp ORDER BY 3 DESC, 1 LIMIT 8;
UPDATE t SET val = val * 2 WHERE grp % 5 = 0;
DELETE FROM t WHERE id % 11 = 0;
SELECT grp, count(*), round(sum(val), 2) FROM t GROUP BY grp HAVING count(*) > 180 ORDER BY grp LIMIT 10;
SELECT name FROM t WHERE name LIKE 'name-1%' ORDER BY val DESC, id LIMIT 5;
SELECT length(group_concat(name, ';')) FROM (SELECT name FROM t ORDER BY name LIMIT 3000);
CREATE TABLE s AS SELECT grp, sum(val) AS total FROM t GROUP BY grp;
SELECT count(*), round(sum(total), 2) FROM s;
PRAGMA integrity_check;
