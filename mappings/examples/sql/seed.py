"""Create the example shop database in SQLite: `python mappings/examples/sql/seed.py [path]`.

The default path is shop.db beside this script, which `SHOP_DB_URL=sqlite+aiosqlite:///shop.db`
names (a relative SQLite path in the mapping is read from the mapping's folder). An existing file is
replaced. Only the standard library is used, so it runs with any Python 3.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def statements(sql: str) -> list[str]:
    """seed.sql's statements: comments dropped, split on ';' (it has none inside literals)."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def seed(path: Path) -> None:
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as conn:
        for statement in statements((HERE / "seed.sql").read_text(encoding="utf-8")):
            conn.execute(statement)
    conn.close()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "shop.db"
    seed(target)
    print(f"seeded {target}")
