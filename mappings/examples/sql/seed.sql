-- The example shop database: customers and their orders.
-- Plain SQL that runs on SQLite and PostgreSQL (seed.py runs it; psql -f seed.sql works too).
-- One statement per ';' and no ';' inside literals: seed.py splits on it.

CREATE TABLE customers (
  id INTEGER PRIMARY KEY,
  email VARCHAR(200) NOT NULL UNIQUE,
  full_name VARCHAR(200),
  tier CHAR(1),
  newsletter BOOLEAN NOT NULL DEFAULT FALSE,
  birth_date DATE,
  lifetime_value NUMERIC(12, 2),
  last_order_at TIMESTAMP
);

CREATE TABLE orders (
  id INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customers (id),
  product VARCHAR(100) NOT NULL,
  ordered_at TIMESTAMP NOT NULL
);

-- Anna's address is stored as she typed it: the hub lower-cases emails, so the mapping compares
-- lower(email) (key_match: lower).
INSERT INTO customers VALUES
  (1, 'Anna.deVries@Example.com', '  Anna de  Vries ', 'G', TRUE, '1985-03-14', 1250.50, '2024-05-01 10:15:00'),
  (2, 'bob@example.com', 'Bob Jansen', 'S', FALSE, NULL, 100.00, '2023-11-20 08:00:00'),
  (3, 'carol@example.com', 'Carol Smit', NULL, FALSE, NULL, NULL, NULL);

INSERT INTO orders VALUES
  (1, 1, 'savings-plus', '2023-02-01 09:00:00'),
  (2, 1, 'mortgage', '2024-05-01 10:15:00'),
  (3, 2, 'credit-card', '2023-11-20 08:00:00'),
  (4, 1, 'mortgage', '2022-07-12 16:30:00');
