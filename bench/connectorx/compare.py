"""Side-by-side ingestion benchmark: sensei ingest vs ConnectorX (+ pyarrow Parquet).

Called by bench/connectorx/run with the sensei binary and row counts. For
each engine (PostgreSQL, MariaDB) and size it creates a fresh database with
one table of typical columns, runs both tools on it (each in its own
process, wall time and peak RSS from wait4), checks both read every row,
prints a table and the ratios. Each tool runs REPEAT times (default 3),
alternating, each run into an empty folder: the table shows the median wall
time, the largest peak RSS and every run's time (a 1M-row run lasts about a
second, where one run's noise moves the ratio by a tenth).
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

PG = "postgresql://postgres@127.0.0.1:5432"
MY = "mysql://root@127.0.0.1:3306"
WORKERS = os.cpu_count() or 2
REPEAT = max(int(os.environ.get("REPEAT", "3")), 1)

CX_SCRIPT = r"""
import sys, connectorx as cx, pyarrow.parquet as pq
url, out, parts = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = cx.read_sql(url, "SELECT * FROM orders", return_type="arrow",
                partition_on="id", partition_num=parts)
pq.write_table(t, out, compression="zstd")
print(t.num_rows)
"""


def psql(db, sql):
    subprocess.run(["psql", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", db,
                    "-v", "ON_ERROR_STOP=1", "-c", sql], check=True)


def timed(cmd, **kw):
    start = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.monotonic() - start
    out = p.stdout.read().decode()
    err = p.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{cmd[0]} failed:\n{out}\n{err}")
    return wall, usage.ru_maxrss / 1024.0, out


def mysql(sql, db=None):
    cmd = ["mysql", "-h", "127.0.0.1", "-P", "3306", "-uroot"] + ([db] if db else []) + ["-e", sql]
    subprocess.run(cmd, check=True)


def load_postgres(db, n):
    psql("postgres", f"DROP DATABASE IF EXISTS {db}")
    psql("postgres", f"CREATE DATABASE {db}")
    psql(db, f"""
        CREATE TABLE orders (
          id bigint PRIMARY KEY, customer_id int NOT NULL, amount numeric(12,2) NOT NULL,
          ratio double precision, status text NOT NULL, note text,
          placed_at timestamp NOT NULL, ship_date date, paid boolean NOT NULL);
        INSERT INTO orders SELECT g, g % 100000, (g % 100000) / 100.0, g / 7.0,
          (ARRAY['new','paid','shipped','returned'])[g % 4 + 1],
          CASE WHEN g % 3 = 0 THEN NULL ELSE 'note ' || g END,
          timestamp '2020-01-01' + g * interval '1 second', date '2020-01-01' + (g % 1000),
          g % 2 = 0
        FROM generate_series(1, {n}) g;""")
    psql(db, "VACUUM ANALYZE orders")
    return f"{PG}/{db}", lambda: psql("postgres", f"DROP DATABASE IF EXISTS {db}")


def load_mariadb(db, n):
    mysql(f"DROP DATABASE IF EXISTS {db}; CREATE DATABASE {db} CHARACTER SET utf8mb4")
    mysql(f"""
        CREATE TABLE orders (
          id BIGINT PRIMARY KEY, customer_id INT NOT NULL, amount DECIMAL(12,2) NOT NULL,
          ratio DOUBLE, status VARCHAR(12) NOT NULL, note VARCHAR(40),
          placed_at DATETIME NOT NULL, ship_date DATE, paid BOOLEAN NOT NULL);
        INSERT INTO orders SELECT seq, seq % 100000, (seq % 100000) / 100, seq / 7,
          ELT(seq % 4 + 1, 'new', 'paid', 'shipped', 'returned'),
          IF(seq % 3 = 0, NULL, CONCAT('note ', seq)),
          TIMESTAMP('2020-01-01') + INTERVAL seq SECOND, DATE('2020-01-01') + INTERVAL (seq % 1000) DAY,
          seq % 2 = 0
        FROM seq_1_to_{n};
        ANALYZE TABLE orders;""", db)
    return f"{MY}/{db}", lambda: mysql(f"DROP DATABASE IF EXISTS {db}")


def run_sensei(sensei, url, n):
    """One `sensei ingest` into an empty folder: (wall s, peak RSS MB)."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "bench.toml")
        with open(cfg, "w") as f:
            f.write(f'[migration]\nname = "bench"\n[source]\nurl = "{url}"\n'
                    f'[target]\nurl = "sqlite://{tmp}/unused.db"\n'
                    f'[runtime]\nworkdir = "{tmp}/work"\n'
                    f'[ingestion]\npartition_rows = {max(n // (4 * WORKERS), 1)}\n')
        wall, rss, _ = timed([sensei, "ingest", cfg, "--workers", str(WORKERS)])
        staged = subprocess.run(
            [sys.executable, "-c",
             "import sys,glob,pyarrow.parquet as pq;"
             "print(sum(pq.ParquetFile(p).metadata.num_rows for p in glob.glob(sys.argv[1]+'/**/*.parquet', recursive=True)))",
             f"{tmp}/work"], capture_output=True, text=True, check=True).stdout.strip()
    assert int(staged) == n, f"sensei staged {staged} rows of {n}"
    return wall, rss


def run_connectorx(url, n):
    """One ConnectorX read written to Parquet: (wall s, peak RSS MB)."""
    with tempfile.TemporaryDirectory() as tmp:
        wall, rss, out = timed([sys.executable, "-c", CX_SCRIPT, url,
                                os.path.join(tmp, "cx.parquet"), str(WORKERS)])
    assert int(out.strip()) == n, f"connectorx read {out} rows of {n}"
    return wall, rss


def main():
    sensei = sys.argv[1]
    sizes = [int(x) for x in sys.argv[2:]]
    rows_out = []
    for engine, load in [("postgresql", load_postgres), ("mariadb", load_mariadb)]:
        for n in sizes:
            url, drop = load(f"sensei_bench_cx_{n}", n)
            s_runs, c_runs = [], []
            for _ in range(REPEAT):
                s_runs.append(run_sensei(sensei, url, n))
                c_runs.append(run_connectorx(url, n))
            drop()
            rows_out.append((engine, n, s_runs, c_runs))
    print(f"{'source':<10} {'rows':>8} | {'sensei s':>8} {'rows/s':>9} {'RSS MB':>7} | "
          f"{'connectorx s':>12} {'rows/s':>9} {'RSS MB':>7} | {'speed ratio':>11} {'RSS ratio':>9}")
    runs = []
    for e, n, s_runs, c_runs in rows_out:
        sw, cw = (statistics.median(w for w, _ in r) for r in (s_runs, c_runs))
        sr, cr = (max(m for _, m in r) for r in (s_runs, c_runs))
        print(f"{e:<10} {n:>8} | {sw:>8.2f} {n / sw:>9.0f} {sr:>7.0f} | {cw:>12.2f} {n / cw:>9.0f} {cr:>7.0f} | "
              f"{cw / sw:>10.2f}x {sr / cr:>8.2f}x")
        runs.append(f"  {e} {n}: sensei " + " ".join(f"{w:.2f}" for w, _ in s_runs)
                    + " s; connectorx " + " ".join(f"{w:.2f}" for w, _ in c_runs) + " s")
    print(f"times are medians of {REPEAT} runs per tool, alternating; RSS the largest peak. Every run:")
    print("\n".join(runs))
    print("speed ratio = connectorx time / sensei time (above 1: sensei faster); "
          "RSS ratio = sensei peak / connectorx peak. Sensei also profiles, scans for PII "
          "and writes zstd Parquet partitions with their SHA-256; connectorx reads into Arrow "
          "and pyarrow writes one zstd Parquet file.")


if __name__ == "__main__":
    main()
