#!/usr/bin/env python3
"""gen_sql.py - writes the deterministic sqlite3 workload to stdout.

Individual INSERT statements inside transactions (each is parsed, so sqlite3
allocates per statement as a real application does), then indexes, updates,
deletes, joins, aggregates and sorts. Same text every time: no randomness
beyond a fixed-seed LCG.

usage: gen_sql.py [rows]   (default 60000)
"""
import sys

rows = int(sys.argv[1]) if len(sys.argv) > 1 else 60000
out = sys.stdout
seed = 12345


def lcg():
    global seed
    seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
    return seed


words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf",
         "hotel", "india", "juliet", "kilo", "lima", "mike", "november"]
out.write("PRAGMA cache_size=-16000;\n")
out.write("CREATE TABLE customer(id INTEGER PRIMARY KEY, name TEXT, city TEXT, score REAL);\n")
out.write("CREATE TABLE orders(id INTEGER PRIMARY KEY, customer INTEGER, item TEXT, qty INTEGER, price REAL, note TEXT);\n")
out.write("BEGIN;\n")
ncust = max(rows // 20, 10)
for i in range(ncust):
    r = lcg()
    out.write("INSERT INTO customer VALUES(%d,'%s %s %d','%s',%d.%02d);\n" % (
        i, words[r % 14], words[(r >> 4) % 14], i, words[(r >> 8) % 14], r % 1000, (r >> 3) % 100))
out.write("COMMIT;\nBEGIN;\n")
for i in range(rows):
    r = lcg()
    note = "-".join(words[(r >> k) % 14] for k in range(0, 3 + r % 6))
    out.write("INSERT INTO orders(customer,item,qty,price,note) VALUES(%d,'%s',%d,%d.%02d,'%s');\n" % (
        r % ncust, words[(r >> 5) % 14] + str(r % 97), 1 + r % 9, r % 500, (r >> 7) % 100, note))
    if i % 5000 == 4999:
        out.write("COMMIT;\nBEGIN;\n")
out.write("COMMIT;\n")
out.write("CREATE INDEX orders_customer ON orders(customer);\n")
out.write("CREATE INDEX orders_item ON orders(item, qty);\n")
out.write("CREATE INDEX customer_city ON customer(city, score);\n")
out.write("UPDATE orders SET price = price * 1.1 WHERE qty > 5;\n")
out.write("DELETE FROM orders WHERE id % 17 = 0;\n")
out.write("SELECT count(*), sum(qty), round(sum(price), 2) FROM orders;\n")
out.write("SELECT c.city, count(*), round(avg(o.price), 3), max(o.qty) FROM orders o "
          "JOIN customer c ON c.id = o.customer GROUP BY c.city ORDER BY c.city;\n")
out.write("SELECT item, sum(qty) AS q FROM orders GROUP BY item ORDER BY q DESC, item LIMIT 20;\n")
out.write("SELECT c.name, round(sum(o.price * o.qty), 2) AS total FROM customer c "
          "JOIN orders o ON o.customer = c.id GROUP BY c.id ORDER BY total DESC, c.id LIMIT 15;\n")
out.write("SELECT group_concat(note, ',') IS NOT NULL, length(group_concat(note, ',')) FROM "
          "(SELECT note FROM orders ORDER BY note, id LIMIT 5000);\n")
out.write("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < %d) "
          "SELECT count(*), sum(length(printf('%%08d-%%s', x, hex(x)))) FROM n;\n" % rows)
out.write("SELECT o.item, count(DISTINCT o.customer) FROM orders o WHERE o.note LIKE '%echo%' "
          "GROUP BY o.item ORDER BY 2 DESC, 1 LIMIT 10;\n")
out.write("CREATE TABLE summary AS SELECT customer, count(*) n, sum(price) p FROM orders GROUP BY customer;\n")
out.write("SELECT count(*), round(sum(p), 2) FROM summary;\n")
out.write("DROP INDEX orders_item;\nVACUUM;\nSELECT count(*) FROM orders;\n")
