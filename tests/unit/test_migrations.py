"""Versioned warehouse migrations match the declared schema and apply once."""

from collectors.schema import TABLES
from collectors.warehouse import migrate, migrations, open_warehouse, schema_version


def test_every_declared_table_exists_with_its_columns_and_types(tmp_path):
    con = open_warehouse(tmp_path / "w.duckdb")
    for spec in TABLES.values():
        actual = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = ? ORDER BY ordinal_position",
            [spec.name],
        ).fetchall()
        assert actual == [(c.name, c.type) for c in spec.columns], spec.name


def test_bookkeeping_tables_exist(tmp_path):
    con = open_warehouse(tmp_path / "w.duckdb")
    names = {
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    }
    assert {"collector_runs", "watermarks", "rejects", "alerts", "schema_version"} <= names


def test_migrations_apply_once_and_record_the_version(tmp_path):
    path = tmp_path / "w.duckdb"
    con = open_warehouse(path)
    latest = max(v for v, _, _ in migrations())
    assert schema_version(con) == latest
    assert migrate(con) == latest  # a second pass applies nothing
    con.close()
    con = open_warehouse(path)
    assert con.execute("SELECT count(*) FROM schema_version").fetchone()[0] == len(migrations())


def test_a_second_writer_is_told_the_warehouse_is_locked(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "w.duckdb"
    con = open_warehouse(path)
    code = (
        "import sys; from collectors.warehouse import open_warehouse, WarehouseLocked\n"
        f"try: open_warehouse({str(path)!r})\n"
        "except WarehouseLocked: sys.exit(3)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True)
    con.close()
    assert result.returncode == 3
