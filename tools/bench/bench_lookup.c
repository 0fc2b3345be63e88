/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Lookup drivers of posgate-bench: the query set and its three consumers, so that posgate and
 * its baselines answer exactly the same questions on the same keys.
 *
 *   prep   reads entries.csv once and writes, into --out DIR:
 *            queries.txt  one "TYPE:VALUE" per check (half listed identifiers sampled from the
 *                         CSV, half valid cn_rid absent from it), shuffled
 *            qmsgs.txt    the key message (type ":" canonical) of each query, same order
 *            qkeys.bin    the 16-byte entry key of each query, same order
 *            misses.txt   the absent identifiers alone (every check ALLOWs), unshuffled
 *            keys.bin     the 16-byte key of every CSV row
 *            redis.resp   SADD commands of every key, for redis-cli --pipe
 *            naive.db     SQLite: ids(id TEXT PRIMARY KEY) of every row's key message
 *   check  posgate_open + posgate_check through posgate.h, one request per check, with the
 *          ALLOW audit durability of --durability (default batched; DENY and REFER are always
 *          committed before the answer)
 *   floor  HMAC of the key message + probe of an in-memory open-addressing table of keys.bin
 *   naive  one prepared SELECT on naive.db per lookup (reset, bind, step)
 *   cold   spawns "cold-child" (posgate_open + one check) several times; median wall time
 *
 * Queries are read from mapped files (file-backed pages) and latencies go to a fixed-size
 * histogram, so the anonymous RSS reported by "check" is posgate's own, not the driver's.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "crypto.h"
#include "entries_csv.h"
#include "ident.h"
#include "posgate.h"

extern char **environ;

#define WARMUP_MAX 10000
#define KEY_LEN    16
#define LISTS_MAX  1024 /* FEED_LISTS_MAX */

static void
load_list_key(const char *path, struct crypto_hmac_key *k)
{
    uint8_t raw[64];
    size_t n;
    FILE *f = fopen(path, "rb");

    if (f == NULL) {
        bench_die("%s: %s", path, strerror(errno));
    }
    n = fread(raw, 1, sizeof raw, f);
    fclose(f);
    if (n != 32) {
        bench_die("%s: list key is %zu bytes, expected 32 (posgate-keygen --list-key)", path, n);
    }
    if (crypto_hmac_key_init(k, raw, n) != POSGATE_OK) {
        bench_die("%s: cannot set up the HMAC key", path);
    }
}

static FILE *
open_out(const char *dir, const char *name, const char *mode)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, mode);
    if (f == NULL) {
        bench_die("%s: %s", path, strerror(errno));
    }
    return f;
}

static void
close_out(FILE *f, const char *name)
{
    if (fclose(f) != 0) {
        bench_die("%s: write failed", name);
    }
}

struct query {
    char *arg;
    char *msg;
    uint8_t key[KEY_LEN];
};

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static char *
dup_str(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (p == NULL) {
        bench_die("out of memory");
    }
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void
sql_ok(sqlite3 *db, int rc, const char *what)
{
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        bench_die("sqlite %s: %s", what, sqlite3_errmsg(db));
    }
}

/* Fills q[nq..checks) with misses: valid cn_rid from a value range the synthesiser does not draw
 * from, keyed with hk. Returns the new count of queries (checks). */
static uint64_t
add_misses(struct query *q, uint64_t nq, uint64_t checks, uint64_t seed,
           const struct crypto_hmac_key *hk)
{
    char errmsg[256];

    for (uint64_t i = 0; nq < checks; i++) {
        char rid[IDENT_SYNTH_CN_RID_SIZE], a[64];
        struct ident id;
        char msg[IDENT_MSG_MAX];
        size_t mlen;

        ident_synth_cn_rid(bench_mix(seed ^ 0x5bd1e9955bd1e995ULL) ^ bench_mix(i + 0x7fffffffULL),
                           rid);
        snprintf(a, sizeof a, "cn_rid:%s", rid);
        if (ident_parse_arg(a, strlen(a), &id, errmsg, sizeof errmsg) != POSGATE_OK) {
            bench_die("synthetic %s: %s", a, errmsg);
        }
        mlen = ident_key_message(&id, msg, sizeof msg);
        q[nq].arg = dup_str(a, strlen(a));
        q[nq].msg = dup_str(msg, mlen);
        ident_entry_key(hk, &id, q[nq].key);
        nq++;
    }
    return nq;
}

/* The lists the sampled listed identifiers come from, so that the run can tell they cover every
 * list of the feed. */
struct list_seen {
    char *names[LISTS_MAX];
    size_t n;
};

static void
list_seen_add(struct list_seen *ls, const char *name, size_t len)
{
    for (size_t i = 0; i < ls->n; i++) {
        if (strlen(ls->names[i]) == len && memcmp(ls->names[i], name, len) == 0) {
            return;
        }
    }
    if (ls->n < LISTS_MAX) {
        ls->names[ls->n++] = dup_str(name, len);
    }
}

static void
list_seen_free(struct list_seen *ls)
{
    for (size_t i = 0; i < ls->n; i++) {
        free(ls->names[i]);
    }
    ls->n = 0;
}

/* Writes misses.txt (q[nhits..nq), in order), then shuffles q and writes queries.txt,
 * qmsgs.txt and qkeys.bin, freeing each query's strings. */
static void
write_queries(struct query *q, uint64_t nhits, uint64_t nq, uint64_t seed, const char *out)
{
    FILE *fq, *fm, *fk;

    fq = open_out(out, "misses.txt", "w");
    for (uint64_t i = nhits; i < nq; i++) {
        fprintf(fq, "%s\n", q[i].arg);
    }
    close_out(fq, "misses.txt");
    for (uint64_t i = nq - 1; i > 0; i--) {
        uint64_t j = bench_mix(seed + 0x1234567ULL + i) % (i + 1);
        struct query t = q[i];
        q[i] = q[j];
        q[j] = t;
    }
    fq = open_out(out, "queries.txt", "w");
    fm = open_out(out, "qmsgs.txt", "w");
    fk = open_out(out, "qkeys.bin", "wb");
    for (uint64_t i = 0; i < nq; i++) {
        fprintf(fq, "%s\n", q[i].arg);
        fprintf(fm, "%s\n", q[i].msg);
        fwrite(q[i].key, 1, KEY_LEN, fk);
        free(q[i].arg);
        free(q[i].msg);
    }
    close_out(fq, "queries.txt");
    close_out(fm, "qmsgs.txt");
    close_out(fk, "qkeys.bin");
}

int
bench_cmd_prep(int argc, char **argv)
{
    const char *csv = bench_arg(argc, argv, "--entries", NULL);
    const char *keyf = bench_arg(argc, argv, "--list-key", NULL);
    const char *out = bench_arg(argc, argv, "--out", NULL);
    uint64_t checks = bench_arg_u64(argc, argv, "--checks", 1000000);
    uint64_t seed = bench_arg_u64(argc, argv, "--seed", 42);
    struct crypto_hmac_key hk;
    struct bench_map map;
    struct csv_reader *rd = NULL;
    struct list_seen *seen = calloc(1, sizeof *seen);
    struct query *q;
    uint64_t *pick, nrows, nhits, nq = 0, row = 0, p = 0;
    FILE *in, *fkeys, *fresp;
    sqlite3 *db = NULL;
    sqlite3_stmt *ins = NULL;
    char path[4096], errmsg[256];

    if (csv == NULL || keyf == NULL || out == NULL || checks < 2) {
        bench_die("usage: prep --entries CSV --list-key FILE --out DIR [--checks N] [--seed S]");
    }
    load_list_key(keyf, &hk);
    if (bench_map_open(&map, csv) != 0) {
        bench_die("%s: cannot map the file", csv);
    }
    nrows = bench_map_count_lines(&map) - 1; /* the header */
    bench_map_close(&map);
    if (nrows == 0) {
        bench_die("%s: no rows", csv);
    }
    nhits = checks / 2;
    pick = malloc(nhits * sizeof *pick);
    q = calloc(checks, sizeof *q);
    if (pick == NULL || q == NULL || seen == NULL) {
        bench_die("out of memory");
    }
    for (uint64_t i = 0; i < nhits; i++) {
        pick[i] = bench_mix(seed * 0x100000001ULL + i) % nrows;
    }
    qsort(pick, nhits, sizeof *pick, cmp_u64);

    snprintf(path, sizeof path, "%s/naive.db", out);
    unlink(path);
    sql_ok(NULL, sqlite3_open(path, &db), "open");
    sql_ok(db, sqlite3_exec(db, "CREATE TABLE ids(id TEXT PRIMARY KEY); BEGIN", NULL, NULL, NULL),
           "create");
    sql_ok(db, sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO ids(id) VALUES (?1)", -1, &ins, NULL),
           "prepare");

    in = fopen(csv, "rb");
    if (in == NULL || csv_reader_new(in, "entries.csv", 0, 0, &rd) != POSGATE_OK) {
        bench_die("%s: cannot read", csv);
    }
    fkeys = open_out(out, "keys.bin", "wb");
    fresp = open_out(out, "redis.resp", "wb");
    for (;;) {
        size_t nf;
        char *const *fields;
        const size_t *lens;
        struct ident id;
        char msg[IDENT_MSG_MAX];
        size_t mlen;
        uint8_t key[KEY_LEN];
        enum posgate_err e = csv_reader_next(rd, &nf, &fields, &lens);

        if (e == POSGATE_ERR_NOTFOUND) {
            break;
        }
        if (e != POSGATE_OK || nf != ENTRIES_CSV_FIELDS) {
            bench_die("%s line %" PRIu64 ": %s", csv, csv_reader_line(rd), csv_reader_errmsg(rd));
        }
        if (csv_reader_line(rd) == 1 && strcmp(fields[0], "list") == 0) {
            continue;
        }
        if (ident_parse(fields[3], fields[4], lens[4], &id, errmsg, sizeof errmsg) != POSGATE_OK) {
            bench_die("%s line %" PRIu64 ": %s", csv, csv_reader_line(rd), errmsg);
        }
        mlen = ident_key_message(&id, msg, sizeof msg);
        ident_entry_key(&hk, &id, key);
        if (fwrite(key, 1, KEY_LEN, fkeys) != KEY_LEN) {
            bench_die("keys.bin: write failed");
        }
        fprintf(fresp, "*3\r\n$4\r\nSADD\r\n$1\r\ns\r\n$%d\r\n", KEY_LEN);
        fwrite(key, 1, KEY_LEN, fresp);
        fputs("\r\n", fresp);
        sqlite3_bind_text(ins, 1, msg, (int)mlen, SQLITE_TRANSIENT);
        sql_ok(db, sqlite3_step(ins), "insert");
        sqlite3_reset(ins);
        while (p < nhits && pick[p] == row) {
            size_t alen = lens[3] + 1 + lens[4];
            q[nq].arg = malloc(alen + 1);
            if (q[nq].arg == NULL) {
                bench_die("out of memory");
            }
            snprintf(q[nq].arg, alen + 1, "%s:%s", fields[3], fields[4]);
            q[nq].msg = dup_str(msg, mlen);
            memcpy(q[nq].key, key, KEY_LEN);
            list_seen_add(seen, fields[0], lens[0]);
            nq++;
            p++;
        }
        row++;
    }
    csv_reader_free(rd);
    fclose(in);
    close_out(fkeys, "keys.bin");
    close_out(fresp, "redis.resp");
    sqlite3_finalize(ins);
    sql_ok(db, sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), "commit");
    sqlite3_close(db);
    if (nq != nhits) {
        bench_die("%s: sampled %" PRIu64 " listed identifiers, expected %" PRIu64
                  " (rows counted %" PRIu64 ", read %" PRIu64 ")",
                  csv, nq, nhits, nrows, row);
    }
    nq = add_misses(q, nq, checks, seed, &hk);
    write_queries(q, nhits, nq, seed, out);
    free(q);
    free(pick);
    crypto_hmac_key_cleanup(&hk);
    printf("prep_rows=%" PRIu64 "\nprep_queries=%" PRIu64 "\nprep_hits=%" PRIu64 "\n", row, nq,
           nhits);
    printf("prep_hit_lists=%zu\n", seen->n);
    list_seen_free(seen);
    free(seen);
    return 0;
}

static void
write_cdf(const struct bench_hist *h, int argc, char **argv)
{
    const char *cdf = bench_arg(argc, argv, "--cdf", NULL);

    if (cdf != NULL && bench_hist_write_cdf(h, cdf) != 0) {
        bench_die("%s: cannot write the CDF", cdf);
    }
}

/* One check as a kiosk application makes it: reset, service, identifier, check. */
static enum posgate_err
one_check(struct posgate *pg, struct posgate_request *rq, struct posgate_result *res,
          const char *service, const char *arg)
{
    enum posgate_err e;

    posgate_request_reset(rq);
    e = posgate_request_set_service(rq, service);
    if (e == POSGATE_OK) {
        e = posgate_request_add_id(rq, arg);
    }
    if (e != POSGATE_OK) {
        bench_die("query \"%s\": %s", arg, posgate_request_errmsg(rq));
    }
    return posgate_check(pg, rq, res);
}

int
bench_cmd_check(int argc, char **argv)
{
    const char *dir = bench_arg(argc, argv, "--data-dir", NULL);
    const char *qf = bench_arg(argc, argv, "--queries", NULL);
    const char *service = bench_arg(argc, argv, "--service", "rail.hsr");
    const char *deny_out = bench_arg(argc, argv, "--deny-out", NULL);
    const char *prefix = bench_arg(argc, argv, "--prefix", "check");
    const char *durability = bench_arg(argc, argv, "--durability", "batched");
    uint64_t limit = bench_arg_u64(argc, argv, "--checks", 0);
    uint64_t warm = bench_arg_u64(argc, argv, "--warmup", WARMUP_MAX);
    uint64_t n = 0, errors = 0, counts[4] = {0, 0, 0, 0}, t_start, t_end;
    struct bench_hist *h = malloc(sizeof *h);
    struct posgate *pg = NULL;
    struct posgate_request *rq = NULL;
    struct posgate_result *res = NULL;
    struct bench_map map;
    char arg[BENCH_LINE_MAX], first_err[512] = "";
    FILE *fd = NULL;
    long anon_before, anon_after;

    if (dir == NULL || qf == NULL || h == NULL) {
        bench_die("usage: check --data-dir DIR --queries FILE [--service S] [--checks N] "
                  "[--warmup N] [--cdf FILE] [--deny-out FILE] [--prefix NAME] "
                  "[--durability batched|strict]");
    }
    bench_hist_init(h);
    if (bench_map_open(&map, qf) != 0) {
        bench_die("%s: cannot map the file", qf);
    }
    anon_before = bench_proc_status_kb(0, "RssAnon");
    if (posgate_open(dir, &pg) != POSGATE_OK) {
        bench_die("posgate_open %s: %s", dir, posgate_open_errmsg());
    }
    if (posgate_set_audit_durability(pg, durability) != POSGATE_OK) {
        bench_die("--durability \"%s\": expected strict or batched", durability);
    }
    /* unbounded: a queue at its size limit folds ALLOW events into counted summaries, and the
     * run would measure that fallback instead of the event every ALLOW normally writes */
    if (posgate_set_audit_limits(pg, 0, 30) != POSGATE_OK) {
        bench_die("posgate_set_audit_limits failed");
    }
    if (posgate_request_new(&rq) != POSGATE_OK || posgate_result_new(&res) != POSGATE_OK) {
        bench_die("out of memory");
    }
    if (deny_out != NULL) {
        fd = fopen(deny_out, "w");
        if (fd == NULL) {
            bench_die("%s: %s", deny_out, strerror(errno));
        }
    }
    for (uint64_t i = 0; i < warm && bench_map_line(&map, arg, sizeof arg) >= 0; i++) {
        if (one_check(pg, rq, res, service, arg) != POSGATE_OK) {
            errors++;
        }
    }
    map.pos = 0;
    t_start = plat_mono_ns();
    while ((limit == 0 || n < limit) && bench_map_line(&map, arg, sizeof arg) >= 0) {
        uint64_t t0 = plat_mono_ns(), t1;
        enum posgate_err e = one_check(pg, rq, res, service, arg);

        t1 = plat_mono_ns();
        bench_hist_add(h, t1 - t0);
        n++;
        if (e != POSGATE_OK) {
            if (errors++ == 0) {
                snprintf(first_err, sizeof first_err, "%.200s: %.300s", arg,
                         posgate_result_errmsg(res));
            }
            continue;
        }
        counts[posgate_result_decision(res) & 3]++;
        if (fd != NULL && posgate_result_decision(res) == POSGATE_DENY) {
            fprintf(fd, "%s\n", arg);
        }
    }
    t_end = plat_mono_ns();
    anon_after = bench_proc_status_kb(0, "RssAnon");
    bench_hist_print(h, prefix);
    printf("%s_per_s=%.0f\n", prefix, (double)n * 1e9 / (double)(t_end - t_start));
    printf("%s_allow=%" PRIu64 "\n%s_deny=%" PRIu64 "\n%s_refer=%" PRIu64 "\n", prefix,
           counts[POSGATE_ALLOW], prefix, counts[POSGATE_DENY], prefix, counts[POSGATE_REFER]);
    printf("%s_errors=%" PRIu64 "\n", prefix, errors);
    printf("%s_rss_mb=%.2f\n", prefix, (double)anon_after / 1024.0);
    printf("%s_rss_driver_mb=%.2f\n", prefix, (double)anon_before / 1024.0);
    printf("%s_hwm_mb=%.2f\n", prefix, (double)bench_proc_status_kb(0, "VmHWM") / 1024.0);
    write_cdf(h, argc, argv);
    if (fd != NULL) {
        fclose(fd);
    }
    posgate_result_free(res);
    posgate_request_free(rq);
    posgate_close(pg);
    bench_map_close(&map);
    free(h);
    if (errors > 0) {
        fprintf(stderr, "posgate-bench: %" PRIu64 " checks failed; first: %s\n", errors, first_err);
        return 1;
    }
    return 0;
}

/* The floor's table: open addressing, linear probing, 16-byte keys inline, all-zero = empty. */
struct oa_table {
    uint8_t *slots;
    uint64_t mask;
};

static uint64_t
slot_of(const uint8_t *key)
{
    uint64_t x;

    memcpy(&x, key, sizeof x);
    return x;
}

static void
oa_insert(struct oa_table *t, const uint8_t *key)
{
    for (uint64_t i = slot_of(key) & t->mask;; i = (i + 1) & t->mask) {
        uint8_t *s = t->slots + i * KEY_LEN;
        static const uint8_t zero[KEY_LEN];
        if (memcmp(s, zero, KEY_LEN) == 0) {
            memcpy(s, key, KEY_LEN);
            return;
        }
        if (memcmp(s, key, KEY_LEN) == 0) {
            return;
        }
    }
}

static int
oa_find(const struct oa_table *t, const uint8_t *key)
{
    static const uint8_t zero[KEY_LEN];

    for (uint64_t i = slot_of(key) & t->mask;; i = (i + 1) & t->mask) {
        const uint8_t *s = t->slots + i * KEY_LEN;
        if (memcmp(s, key, KEY_LEN) == 0) {
            return 1;
        }
        if (memcmp(s, zero, KEY_LEN) == 0) {
            return 0;
        }
    }
}

int
bench_cmd_floor(int argc, char **argv)
{
    const char *kf = bench_arg(argc, argv, "--keys", NULL);
    const char *mf = bench_arg(argc, argv, "--qmsgs", NULL);
    const char *lk = bench_arg(argc, argv, "--list-key", NULL);
    struct crypto_hmac_key hk;
    struct bench_map keys, msgs;
    struct bench_hist *h = malloc(sizeof *h);
    struct oa_table t;
    uint64_t cap = 16, nkeys, hits = 0, n = 0;
    char msg[BENCH_LINE_MAX];
    long mlen;

    if (kf == NULL || mf == NULL || lk == NULL || h == NULL) {
        bench_die("usage: floor --keys keys.bin --qmsgs FILE --list-key FILE [--cdf FILE]");
    }
    load_list_key(lk, &hk);
    if (bench_map_open(&keys, kf) != 0 || bench_map_open(&msgs, mf) != 0) {
        bench_die("cannot map %s or %s", kf, mf);
    }
    nkeys = keys.len / KEY_LEN;
    while (cap < 2 * nkeys) {
        cap *= 2;
    }
    t.mask = cap - 1;
    t.slots = calloc(cap, KEY_LEN);
    if (t.slots == NULL) {
        bench_die("out of memory");
    }
    for (uint64_t i = 0; i < nkeys; i++) {
        oa_insert(&t, (const uint8_t *)keys.data + i * KEY_LEN);
    }
    bench_hist_init(h);
    for (int pass = 0; pass < 2; pass++) {
        msgs.pos = 0;
        while ((mlen = bench_map_line(&msgs, msg, sizeof msg)) >= 0) {
            uint8_t mac[CRYPTO_SHA256_LEN];
            uint64_t t0 = plat_mono_ns(), t1;
            int found;

            crypto_hmac(&hk, msg, (size_t)mlen, mac);
            found = oa_find(&t, mac);
            t1 = plat_mono_ns();
            if (pass == 1) {
                bench_hist_add(h, t1 - t0);
                hits += (uint64_t)found;
                n++;
            }
            if (pass == 0 && n++ >= WARMUP_MAX) {
                break;
            }
        }
        if (pass == 0) {
            n = 0;
        }
    }
    bench_hist_print(h, "floor");
    printf("floor_hits=%" PRIu64 "\nfloor_lookups=%" PRIu64 "\n", hits, n);
    printf("floor_table_mb=%.1f\n", (double)(cap * KEY_LEN) / 1048576.0);
    write_cdf(h, argc, argv);
    free(t.slots);
    bench_map_close(&keys);
    bench_map_close(&msgs);
    crypto_hmac_key_cleanup(&hk);
    free(h);
    return 0;
}

int
bench_cmd_naive(int argc, char **argv)
{
    const char *dbf = bench_arg(argc, argv, "--db", NULL);
    const char *mf = bench_arg(argc, argv, "--qmsgs", NULL);
    struct bench_map msgs;
    struct bench_hist *h = malloc(sizeof *h);
    sqlite3 *db = NULL;
    sqlite3_stmt *sel = NULL;
    uint64_t hits = 0, n = 0;
    char msg[BENCH_LINE_MAX];
    long mlen;

    if (dbf == NULL || mf == NULL || h == NULL) {
        bench_die("usage: naive --db naive.db --qmsgs FILE [--cdf FILE]");
    }
    if (bench_map_open(&msgs, mf) != 0) {
        bench_die("%s: cannot map the file", mf);
    }
    sql_ok(NULL, sqlite3_open_v2(dbf, &db, SQLITE_OPEN_READONLY, NULL), "open");
    sql_ok(db, sqlite3_prepare_v2(db, "SELECT 1 FROM ids WHERE id = ?1", -1, &sel, NULL),
           "prepare");
    bench_hist_init(h);
    for (int pass = 0; pass < 2; pass++) {
        msgs.pos = 0;
        n = 0;
        while ((mlen = bench_map_line(&msgs, msg, sizeof msg)) >= 0) {
            uint64_t t0 = plat_mono_ns(), t1;
            int rc;

            sqlite3_bind_text(sel, 1, msg, (int)mlen, SQLITE_STATIC);
            rc = sqlite3_step(sel);
            sqlite3_reset(sel);
            t1 = plat_mono_ns();
            sql_ok(db, rc, "select");
            n++;
            if (pass == 1) {
                bench_hist_add(h, t1 - t0);
                hits += rc == SQLITE_ROW;
            } else if (n >= WARMUP_MAX) {
                break;
            }
        }
    }
    bench_hist_print(h, "sqlite_naive");
    printf("sqlite_naive_hits=%" PRIu64 "\n", hits);
    write_cdf(h, argc, argv);
    sqlite3_finalize(sel);
    sqlite3_close(db);
    bench_map_close(&msgs);
    free(h);
    return 0;
}

int
bench_cmd_cold_child(int argc, char **argv)
{
    const char *dir = bench_arg(argc, argv, "--data-dir", NULL);
    const char *id = bench_arg(argc, argv, "--id", NULL);
    const char *service = bench_arg(argc, argv, "--service", "rail.hsr");
    struct posgate *pg = NULL;
    struct posgate_request *rq = NULL;
    struct posgate_result *res = NULL;
    int rc = 1;

    if (dir == NULL || id == NULL) {
        return 2;
    }
    if (posgate_open(dir, &pg) != POSGATE_OK) {
        fprintf(stderr, "posgate_open: %s\n", posgate_open_errmsg());
        return 1;
    }
    if (posgate_request_new(&rq) == POSGATE_OK && posgate_result_new(&res) == POSGATE_OK &&
        one_check(pg, rq, res, service, id) == POSGATE_OK) {
        rc = 0;
    } else if (res != NULL) {
        fprintf(stderr, "posgate_check: %s\n", posgate_result_errmsg(res));
    }
    posgate_result_free(res);
    posgate_request_free(rq);
    posgate_close(pg);
    return rc;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

int
bench_cmd_cold(int argc, char **argv)
{
    const char *dir = bench_arg(argc, argv, "--data-dir", NULL);
    const char *id = bench_arg(argc, argv, "--id", NULL);
    const char *service = bench_arg(argc, argv, "--service", "rail.hsr");
    uint64_t runs = bench_arg_u64(argc, argv, "--runs", 11);
    double ms[101];
    char *child[] = {"posgate-bench",
                     "cold-child",
                     "--data-dir",
                     (char *)(uintptr_t)dir,
                     "--id",
                     (char *)(uintptr_t)id,
                     "--service",
                     (char *)(uintptr_t)service,
                     NULL};

    if (dir == NULL || id == NULL || runs == 0 || runs > 101) {
        bench_die("usage: cold --data-dir DIR --id TYPE:VALUE [--service S] [--runs 1..101]");
    }
    for (uint64_t i = 0; i < runs; i++) {
        pid_t pid;
        int st = 0;
        uint64_t t0 = plat_mono_ns();

        if (posix_spawn(&pid, "/proc/self/exe", NULL, NULL, child, environ) != 0) {
            bench_die("posix_spawn: %s", strerror(errno));
        }
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            bench_die("cold-child failed (status %d)", st);
        }
        ms[i] = (double)(plat_mono_ns() - t0) / 1e6;
    }
    qsort(ms, runs, sizeof ms[0], cmp_double);
    printf("cold_start_ms=%.2f\ncold_start_min_ms=%.2f\ncold_start_max_ms=%.2f\n", ms[runs / 2],
           ms[0], ms[runs - 1]);
    return 0;
}
