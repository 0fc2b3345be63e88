/* SPDX-License-Identifier: Apache-2.0 */
/*
 * "pgcopy" of posgate-bench: the floor of the collector's benchmark on PostgreSQL, the fastest
 * way the server takes the same rows. With --from, the event rows a hub stored there (its events
 * table, every column) are read out with COPY ... TO STDOUT into --rows (text format; not
 * timed). With --to, the file, mapped, is sent in 256 KiB pieces with PQputCopyData into a new
 * table --table of --to, created LIKE events INCLUDING ALL (the same columns, defaults and
 * indexes: the primary key (device_id, seq, received_at), the index on decision and the one on
 * decision_id), in one
 * COPY ... FROM STDIN under autocommit. The time runs from the COPY statement to its result,
 * commit included. The two steps may run as two commands, so that a caller can measure the
 * server's CPU around the second alone.
 *
 * Prints copy_dump_rows (--from), and copy_rows, copy_bytes, copy_s, copy_rows_per_s and
 * copy_table_bytes (pg_total_relation_size of the table afterwards) (--to).
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "bench.h"

#define PIECE   (256u * 1024u)

static void quiet(void *arg, const char *message);

static PGconn *
connect_db(const char *uri)
{
    PGconn *c = PQconnectdb(uri);

    if (PQstatus(c) != CONNECTION_OK) {
        bench_die("cannot connect to %s: %s", uri, PQerrorMessage(c));
    }
    PQsetNoticeProcessor(c, quiet, NULL);
    return c;
}

static void
exec_ok(PGconn *c, const char *sql, ExecStatusType want)
{
    PGresult *r = PQexec(c, sql);

    if (PQresultStatus(r) != want) {
        bench_die("%s: %s", sql, PQresultErrorMessage(r));
    }
    PQclear(r);
}

/* COPY of the hub's events into path; returns the rows read. */
static uint64_t
dump_rows(const char *uri, const char *path)
{
    PGconn *c = connect_db(uri);
    FILE *f = fopen(path, "wb");
    PGresult *r;
    char *line = NULL;
    int n;
    uint64_t rows = 0;

    if (f == NULL) {
        bench_die("%s: cannot create", path);
    }
    /* every column, in the table's order: a table LIKE events has the same */
    exec_ok(c, "COPY (SELECT * FROM events) TO STDOUT", PGRES_COPY_OUT);
    while ((n = PQgetCopyData(c, &line, 0)) > 0) {
        if (fwrite(line, 1, (size_t)n, f) != (size_t)n) {
            bench_die("%s: cannot write", path);
        }
        rows++;
        PQfreemem(line);
    }
    r = PQgetResult(c);
    if (n != -1 || PQresultStatus(r) != PGRES_COMMAND_OK) {
        bench_die("COPY TO STDOUT: %s", PQerrorMessage(c));
    }
    PQclear(r);
    if (fclose(f) != 0) {
        bench_die("%s: cannot write", path);
    }
    PQfinish(c);
    return rows;
}

/* Number of lines of the mapped rows file (one row a line in COPY's text format). */
static uint64_t
count_rows(const struct bench_map *m)
{
    uint64_t n = 0;

    for (const char *p = m->data; p != NULL && p < m->data + m->len; n++) {
        p = memchr(p, '\n', (size_t)(m->data + m->len - p));
        p = p != NULL ? p + 1 : NULL;
    }
    return n;
}

/* COPY of the mapped rows into a new table LIKE events of the database at uri, timed. */
static void
load_rows(const char *uri, const struct bench_map *m, const char *table)
{
    PGconn *c = connect_db(uri);
    PGresult *r;
    char sql[512];
    uint64_t rows = count_rows(m), t0, t1;

    snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", table);
    exec_ok(c, sql, PGRES_COMMAND_OK);
    snprintf(sql, sizeof(sql), "CREATE TABLE %s (LIKE events INCLUDING ALL)", table);
    exec_ok(c, sql, PGRES_COMMAND_OK);
    snprintf(sql, sizeof(sql), "COPY %s FROM STDIN", table);
    t0 = plat_mono_ns();
    exec_ok(c, sql, PGRES_COPY_IN);
    for (size_t off = 0; off < m->len; off += PIECE) {
        size_t n = m->len - off < PIECE ? m->len - off : PIECE;

        if (PQputCopyData(c, m->data + off, (int)n) != 1) {
            bench_die("PQputCopyData: %s", PQerrorMessage(c));
        }
    }
    if (PQputCopyEnd(c, NULL) != 1) {
        bench_die("PQputCopyEnd: %s", PQerrorMessage(c));
    }
    r = PQgetResult(c);
    t1 = plat_mono_ns();
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        bench_die("COPY FROM STDIN: %s", PQresultErrorMessage(r));
    }
    if (strtoull(PQcmdTuples(r), NULL, 10) != rows) {
        bench_die("COPY stored %s rows, expected %" PRIu64, PQcmdTuples(r), rows);
    }
    PQclear(r);
    while ((r = PQgetResult(c)) != NULL) {
        PQclear(r);
    }
    printf("copy_rows=%" PRIu64 "\ncopy_bytes=%zu\ncopy_s=%.3f\ncopy_rows_per_s=%.0f\n", rows,
           m->len, (double)(t1 - t0) / 1e9, (double)rows * 1e9 / (double)(t1 - t0));
    snprintf(sql, sizeof(sql), "SELECT pg_total_relation_size('%s')", table);
    r = PQexec(c, sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        printf("copy_table_bytes=%s\n", PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    PQfinish(c);
}

static void
quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message; /* NOTICEs such as "table ... does not exist, skipping" */
}

int
bench_cmd_pgcopy(int argc, char **argv)
{
    const char *from = bench_arg(argc, argv, "--from", NULL);
    const char *to = bench_arg(argc, argv, "--to", NULL);
    const char *rows_path = bench_arg(argc, argv, "--rows", NULL);
    const char *table = bench_arg(argc, argv, "--table", "events_floor");
    struct bench_map m;

    if ((from == NULL && to == NULL) || rows_path == NULL || table[0] == '\0' ||
        strspn(table, "abcdefghijklmnopqrstuvwxyz_") != strlen(table)) {
        bench_die("usage: pgcopy [--from URI] [--to URI] --rows FILE [--table a_z_name]");
    }
    if (from != NULL) {
        printf("copy_dump_rows=%" PRIu64 "\n", dump_rows(from, rows_path));
    }
    if (to != NULL) {
        if (bench_map_open(&m, rows_path) != 0 || m.len == 0) {
            bench_die("%s: cannot map, or empty", rows_path);
        }
        load_rows(to, &m, table);
        bench_map_close(&m);
    }
    return 0;
}
