/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The collector's store (tools/hub/hub_db.c) and batch reader (tools/hub/hub_batch.c), fed with batches
 * made by the device side itself (audit_open on a temporary queue, audit_record,
 * audit_batch_json), so the two formats cannot drift: each (device, seq) stored once, duplicate
 * and overlapping batches idempotent with the same ack, a gap recorded and later closed, chain
 * breaks (an event edited in the device's audit.db, before and after upload) recorded and the
 * device marked chain_ok false, unknown devices and bad signatures refused, folded ALLOWs
 * counted, the stats document, gzip decoding and its bounds.
 * With POSGATE_TEST_PG_URI set (tests/integration/with_pg.sh) the same runs against the
 * PostgreSQL store at that URI, emptied first; the rows are then counted through psql.
 */
#define _DEFAULT_SOURCE
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sqlite3.h>
#include <zlib.h>

#include "audit.h"
#include "crypto.h"
#include "device_key.h"
#include "hub_batch.h"
#include "hub_db.h"
#include "hub_text.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "test.h"

static char dir[] = "/tmp/posgate-hubdb-XXXXXX";

struct dev {
    struct device_key *key;
    struct audit_queue *q;
    char qpath[1200];
    char pub[1200];
};

static void
fill_event(struct audit_event *e, unsigned n, enum audit_decision d)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->id, sizeof(e->id), "%032x", n);
    e->time_us = plat_wall_us();
    e->mono_us = (int64_t)(plat_mono_ns() / 1000u);
    e->decision = d;
    snprintf(e->service, sizeof(e->service), "%s", n % 2 ? "air" : "rail.hsr");
    snprintf(e->operator_id, sizeof(e->operator_id), "clerk-%u", n % 3);
    e->n_subjects = 1;
    memset(e->subjects[0], (int)n, AUDIT_SUBJECT_LEN);
    e->data_age_s = -1;
}

/* A device with its key and queue in dir/NAME.*; durability strict unless max_bytes is set. */
static int
dev_open(struct dev *d, const char *name, uint64_t max_bytes)
{
    char kp[1200], msg[256];
    struct audit_options o;

    memset(d, 0, sizeof(*d));
    snprintf(kp, sizeof(kp), "%s/%s.key", dir, name);
    snprintf(d->pub, sizeof(d->pub), "%s/%s.pub", dir, name);
    snprintf(d->qpath, sizeof(d->qpath), "%s/%s-audit.db", dir, name);
    if (device_key_create(kp, d->pub, msg, sizeof(msg)) != POSGATE_OK ||
        device_key_load(kp, d->pub, &d->key, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "device key %s: %s\n", name, msg);
        return 0;
    }
    audit_options_default(&o);
    if (max_bytes > 0) {
        o.durability = AUDIT_BATCHED;
        o.max_bytes = max_bytes;
    }
    if (audit_open(d->qpath, d->key, &o, 0, &d->q, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "audit_open %s: %s\n", name, msg);
        return 0;
    }
    return 1;
}

/* A second queue dir/NAME-audit.db under the key of device KEYNAME: the device's trail lost
 * and started again, every event signed by the same key. */
static int
dev_reopen(struct dev *d, const char *keyname, const char *name)
{
    char kp[1200], msg[256];

    memset(d, 0, sizeof(*d));
    snprintf(kp, sizeof(kp), "%s/%s.key", dir, keyname);
    snprintf(d->pub, sizeof(d->pub), "%s/%s.pub", dir, keyname);
    snprintf(d->qpath, sizeof(d->qpath), "%s/%s-audit.db", dir, name);
    if (device_key_load(kp, d->pub, &d->key, msg, sizeof(msg)) != POSGATE_OK ||
        audit_open(d->qpath, d->key, NULL, 0, &d->q, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "dev_reopen %s: %s\n", name, msg);
        return 0;
    }
    return 1;
}

static void
dev_close(struct dev *d)
{
    audit_close(d->q);
    device_key_free(d->key);
    d->q = NULL;
    d->key = NULL;
}

static void
record(struct dev *d, unsigned from, unsigned n)
{
    static const enum audit_decision ds[] = {AUDIT_DENY, AUDIT_ALLOW, AUDIT_REFER, AUDIT_ALLOW};
    struct audit_event e;

    for (unsigned i = from; i < from + n; i++) {
        fill_event(&e, i, ds[i % 4]);
        CHECK_OK(audit_record(d->q, &e, NULL));
    }
    CHECK_OK(audit_flush(d->q));
}

static void
batch(struct dev *d, uint64_t since, size_t max, struct buf *out)
{
    CHECK_OK(audit_batch_json(d->q, since, max, out, NULL));
}

static enum posgate_err
enroll(struct hub_db *db, const struct dev *d, char id[DEVICE_ID_HEX_LEN + 1], bool *added)
{
    struct buf pem = BUF_INIT(CRYPTO_PEM_MAX);
    char msg[256];
    enum posgate_err err = plat_read_file(d->pub, &pem);

    if (err == POSGATE_OK) {
        err = hub_db_enroll(db, (const char *)pem.data, pem.len, 1700000000, id, added, msg,
                            sizeof(msg));
    }
    buf_free(&pem);
    return err;
}

static enum posgate_err
post(struct hub_db *db, const struct buf *b, const char *hdr, struct hub_ingest *r)
{
    enum posgate_err err = hub_db_ingest_json(db, b->data, b->len, hdr, 1700000100, r);

    if (err != POSGATE_OK && getenv("HUB_TEST_VERBOSE") != NULL) {
        fprintf(stderr, "ingest: %s: %s\n", posgate_err_name(err), r->error);
    }
    return err;
}

/* Changes the stored body of one event in a device's audit.db, as someone with root on the
 * kiosk would (the stored hash is left alone). */
static void
edit_event(const char *qpath, uint64_t seq)
{
    sqlite3 *s = NULL;
    char sql[256];

    CHECK_INT(sqlite3_open(qpath, &s), SQLITE_OK);
    snprintf(sql, sizeof(sql),
             "UPDATE events SET body = replace(body, '\"clerk-', '\"clerc-') "
             "WHERE seq = %llu",
             (unsigned long long)seq);
    CHECK_INT(sqlite3_exec(s, sql, NULL, NULL, NULL), SQLITE_OK);
    CHECK_INT(sqlite3_changes(s), 1);
    sqlite3_close(s);
}

/* psql -At on the PostgreSQL store under test: the first line of output, or UINT64_MAX. */
static uint64_t
psql_u64(const char *uri, const char *sql)
{
    char cmd[2400], line[64] = "";
    uint64_t n = UINT64_MAX;
    FILE *f;

    snprintf(cmd, sizeof(cmd), "psql -X -q -At -v ON_ERROR_STOP=1 '%s' -c \"%s\"", uri, sql);
    f = popen(cmd, "r");
    if (f != NULL) {
        if (fgets(line, sizeof(line), f) != NULL && line[0] >= '0' && line[0] <= '9') {
            n = strtoull(line, NULL, 10);
        }
        if (pclose(f) != 0) {
            n = UINT64_MAX;
        }
    }
    return n;
}

static uint64_t
count_rows(const char *dbpath, const char *sql)
{
    sqlite3 *s = NULL;
    sqlite3_stmt *st = NULL;
    uint64_t n = UINT64_MAX;

    if (hub_db_is_uri(dbpath)) {
        return psql_u64(dbpath, sql);
    }
    if (sqlite3_open(dbpath, &s) == SQLITE_OK &&
        sqlite3_prepare_v2(s, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        n = (uint64_t)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    sqlite3_close(s);
    return n;
}

/* An answer's JSON string stays valid UTF-8 whatever bytes the request held (an error names
 * what it found). */
static void
test_json_str(void)
{
    struct buf b = BUF_INIT(256);

    CHECK_OK(hub_json_str(&b, "a\xd9" "b\"\xc3\xa9\x01\xc2\x85\xe2\x82"));
    CHECK_STR(buf_cstr(&b), "\"a\\ufffdb\\\"\xc3\xa9\\u0001\\ufffd\\ufffd\\ufffd\\ufffd\"");
    buf_reset(&b);
    CHECK_OK(hub_json_str(&b, "\xf0\x9f\x98\x80 \xed\xa0\x80 \xc0\xaf"));
    CHECK_STR(buf_cstr(&b), "\"\xf0\x9f\x98\x80 \\ufffd\\ufffd\\ufffd \\ufffd\\ufffd\"");
    buf_free(&b);
}

static void
test_safety(void)
{
    struct hub_batch *b = NULL;
    struct hub_db *db = NULL;
    struct hub_ingest r;
    struct buf out = BUF_INIT(1024);
    char msg[256];
    static const char *bad[] = {
        "",
        "[]",
        "{\"v\":2}",
        "{\"v\":1,\"device_id\":\"ABC\"}",
        "{\"v\":1,\"device_id\":\"0123456789abcdef0123456789abcdef\",\"signature\":\"zz\"}",
        "{\"v\":1,\"device_id\":\"0123456789abcdef0123456789abcdef\",\"signature\":\"3045\","
        "\"head\":{\"seq\":1},\"events\":[]}",
        "{\"v\":1,\"device_id\":\"0123456789abcdef0123456789abcdef\",\"signature\":\"3045\","
        "\"head\":{\"seq\":0,\"hash\":\""
        "0000000000000000000000000000000000000000000000000000000"
        "000000000\"},\"events\":[{\"kind\":\"decision\"}]}",
        "{\"v\":1,\"device_id\":\"0123456789abcdef0123456789abcdef\",\"signature\":\"3045\","
        "\"head\":{\"seq\":0,\"hash\":\""
        "0000000000000000000000000000000000000000000000000000000"
        "000000000\"},\"events\":{}}",
    };

    CHECK_ERR(hub_db_open(NULL, &db, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK_ERR(hub_batch_parse("{}", 2, NULL, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK_ERR(hub_db_ingest(NULL, NULL, NULL, 0, &r), POSGATE_ERR_INVALID);
    CHECK_ERR(hub_db_stats_json(NULL, &out), POSGATE_ERR_INVALID);
    hub_db_close(NULL);
    hub_batch_free(NULL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        msg[0] = 0;
        CHECK_ERR(hub_batch_parse(bad[i], strlen(bad[i]), &b, msg, sizeof(msg)), POSGATE_ERR_PARSE);
        CHECK(b == NULL);
        CHECK(msg[0] != 0);
    }
    /* an empty batch of the right shape parses */
    {
        const char *ok = "{\"v\":1,\"device_id\":\"0123456789abcdef0123456789abcdef\","
                         "\"signature\":\"3045\",\"idempotency_key\":\"k1\",\"head\":{\"seq\":0,"
                         "\"hash\":\"000000000000000000000000000000000000000000000000000000000"
                         "0000000\"},\"events\":[]}";

        CHECK_OK(hub_batch_parse(ok, strlen(ok), &b, msg, sizeof(msg)));
        CHECK(b != NULL && b->n == 0 && strcmp(b->idem, "k1") == 0 && b->sig_len == 2);
        hub_batch_free(b);
        b = NULL;
    }
    /* gzip: garbage, truncation, a bomb past the bound */
    CHECK_ERR(hub_gunzip("not gzip", 8, &out, msg, sizeof(msg)), POSGATE_ERR_PARSE);
    CHECK_ERR(hub_gunzip("", 0, &out, msg, sizeof(msg)), POSGATE_ERR_PARSE);
    {
        static uint8_t zeros[200000];
        uint8_t gz[4096];
        z_stream z;
        struct buf small = BUF_INIT(100000), big = BUF_INIT(300000);
        size_t n;

        memset(&z, 0, sizeof(z));
        CHECK_INT(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
        z.next_in = zeros;
        z.avail_in = sizeof(zeros);
        z.next_out = gz;
        z.avail_out = sizeof(gz);
        CHECK_INT(deflate(&z, Z_FINISH), Z_STREAM_END);
        n = sizeof(gz) - z.avail_out;
        deflateEnd(&z);
        CHECK_ERR(hub_gunzip(gz, n, &small, msg, sizeof(msg)), POSGATE_ERR_TOOBIG);
        CHECK_CONTAINS(msg, "more than 100000 bytes");
        CHECK_OK(hub_gunzip(gz, n, &big, msg, sizeof(msg)));
        CHECK_INT(big.len, sizeof(zeros));
        CHECK_ERR(hub_gunzip(gz, n - 10, &big, msg, sizeof(msg)), POSGATE_ERR_PARSE);
        buf_free(&small);
        buf_free(&big);
    }
    buf_free(&out);
}

/* Parses the stats document and returns the device object of id (or NULL). */
static cJSON *
stats_device(cJSON *root, const char *id)
{
    const cJSON *it;

    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(root, "devices"))
    {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(it, "device_id");

        if (cJSON_IsString(d) && strcmp(d->valuestring, id) == 0) {
            return (cJSON *)it;
        }
    }
    return NULL;
}

static long long
num(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsNumber(v) ? (long long)v->valuedouble : -1;
}

/* PostgreSQL: the usual batch is stored in one statement from the device's head as this
 * process knew it, and only while the device's row still holds that head and the key it was
 * verified with; else it is judged in full. Two handles stand for two hubs. */
static void
test_one_statement(const char *uri, struct hub_db *db)
{
    struct hub_db *db2 = NULL;
    struct dev g, other;
    struct hub_ingest r;
    struct buf j = BUF_INIT(HUB_BATCH_JSON_MAX);
    char idg[DEVICE_ID_HEX_LEN + 1], ido[DEVICE_ID_HEX_LEN + 1], msg[512], sql[512];
    bool added = false;
    uint64_t one0, full0, one, full, one2, full2;

    CHECK(dev_open(&g, "onestmt", 0));
    CHECK(dev_open(&other, "onestmt-other", 0));
    CHECK_OK(enroll(db, &g, idg, &added));
    CHECK_OK(enroll(db, &other, ido, &added));
    CHECK_OK(hub_db_open(uri, &db2, msg, sizeof(msg)));
    record(&g, 1, 6);

    /* enrolled after the first hub read the keys: 1..2 judged in full, which keeps the key;
     * 3..4 then in one statement */
    hub_db_ingest_counts(db, &one0, &full0);
    batch(&g, 0, 2, &j);
    CHECK_OK(post(db, &j, NULL, &r));
    CHECK_INT(r.stored, 2);
    batch(&g, 2, 2, &j);
    CHECK_OK(post(db, &j, NULL, &r));
    CHECK_INT(r.stored, 2);
    CHECK_INT(r.acked_seq, 4);
    hub_db_ingest_counts(db, &one, &full);
    CHECK_INT(one - one0, 1);
    CHECK_INT(full - full0, 1);

    /* 5..6 through the second hub (which read the key with the others), then again through the
     * first: the head it follows (4) has moved on, so the statement stores nothing and the
     * batch is judged in full: duplicates, stored once */
    batch(&g, 4, 2, &j);
    CHECK_OK(post(db2, &j, NULL, &r));
    CHECK_INT(r.stored, 2);
    CHECK_INT(r.acked_seq, 6);
    hub_db_ingest_counts(db2, &one2, &full2);
    CHECK_INT(one2, 1);
    CHECK_INT(full2, 0);
    CHECK_OK(post(db, &j, NULL, &r));
    CHECK_INT(r.stored, 0);
    CHECK_INT(r.duplicates, 2);
    CHECK_INT(r.acked_seq, 6);
    hub_db_ingest_counts(db, &one, &full);
    CHECK_INT(one - one0, 1);
    CHECK_INT(full - full0, 2);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE device_id = '%s'", idg);
    CHECK_INT(psql_u64(uri, sql), 6);

    /* the device's key changed in the database behind the hubs' backs: the key the first hub
     * keeps still verifies the batch, the row no longer names it, and the batch judged in full
     * against the row's key is refused */
    snprintf(sql, sizeof(sql),
             "UPDATE devices SET pub_pem = (SELECT pub_pem FROM devices WHERE device_id = "
             "'%s') WHERE device_id = '%s'; SELECT 0",
             ido, idg);
    CHECK_INT(psql_u64(uri, sql), 0);
    record(&g, 7, 2);
    batch(&g, 6, 10, &j);
    CHECK_ERR(post(db, &j, NULL, &r), POSGATE_ERR_BADSIG);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE device_id = '%s'", idg);
    CHECK_INT(psql_u64(uri, sql), 6);
    hub_db_ingest_counts(db, &one, &full);
    CHECK_INT(one - one0, 1);

    hub_db_close(db2);
    dev_close(&g);
    dev_close(&other);
    buf_free(&j);
}

int
main(void)
{
    struct dev a, b, c, e, f;
    struct hub_db *db = NULL;
    struct hub_ingest r;
    struct hub_device_state st;
    struct buf j = BUF_INIT(HUB_BATCH_JSON_MAX), j2 = BUF_INIT(HUB_BATCH_JSON_MAX);
    char hubpath[1200], msg[512], ida[DEVICE_ID_HEX_LEN + 1], idb[DEVICE_ID_HEX_LEN + 1],
        idc[DEVICE_ID_HEX_LEN + 1], ide[DEVICE_ID_HEX_LEN + 1], idf[DEVICE_ID_HEX_LEN + 1];
    bool added = false;
    uint64_t folded_dev = 0, summaries_dev = 0;

    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_safety();
    test_json_str();
    snprintf(hubpath, sizeof(hubpath), "%s/hub.db", dir);
    if (getenv("POSGATE_TEST_PG_URI") != NULL) {
        snprintf(hubpath, sizeof(hubpath), "%s", getenv("POSGATE_TEST_PG_URI"));
        CHECK_INT(psql_u64(hubpath, "DROP SCHEMA public CASCADE; CREATE SCHEMA public; "
                                    "SELECT 0"),
                  0);
    }
    CHECK_OK(hub_db_open(hubpath, &db, msg, sizeof(msg)));
    fprintf(stderr, "hub_db: the %s store%s%s\n", hub_db_kind(db), db == NULL ? ": " : "",
            db == NULL ? msg : "");
    if (db == NULL || !dev_open(&a, "a", 0) || !dev_open(&b, "b", 0) || !dev_open(&c, "c", 0) ||
        !dev_open(&e, "e", 0) || !dev_open(&f, "f", 3000)) {
        fprintf(stderr, "setup failed\n");
        return 1;
    }

    /* enrolment */
    {
        char id[DEVICE_ID_HEX_LEN + 1];
        const char *junk = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n";

        CHECK_ERR(hub_db_enroll(db, junk, strlen(junk), 1, id, &added, msg, sizeof(msg)),
                  POSGATE_ERR_INVALID);
        CHECK_CONTAINS(msg, "expected an ECDSA P-256 public key");
    }
    CHECK_OK(enroll(db, &a, ida, &added));
    CHECK(added);
    CHECK_STR(ida, device_key_id(a.key));
    CHECK_OK(enroll(db, &a, ida, &added));
    CHECK(!added);
    CHECK_OK(enroll(db, &c, idc, &added));
    CHECK_OK(enroll(db, &e, ide, &added));
    CHECK_OK(enroll(db, &f, idf, &added));
    snprintf(idb, sizeof(idb), "%s", device_key_id(b.key)); /* b is never enrolled */

    /* unknown device: refused, nothing stored */
    record(&b, 1, 3);
    batch(&b, 0, 100, &j);
    CHECK_ERR(post(db, &j, NULL, &r), POSGATE_ERR_NOTFOUND);
    CHECK_CONTAINS(r.error, "not enrolled");
    CHECK_INT(count_rows(hubpath, "SELECT count(*) FROM events"), 0);

    /* store once; a duplicate (a lost ack) and an overlapping batch are idempotent */
    record(&a, 1, 10);
    batch(&a, 0, 5, &j);
    CHECK_OK(post(db, &j, NULL, &r));
    CHECK_INT(r.stored, 5);
    CHECK_INT(r.duplicates, 0);
    CHECK_INT(r.acked_seq, 5);
    CHECK(!r.repeated_key);
    CHECK_OK(post(db, &j, NULL, &r));
    CHECK_INT(r.stored, 0);
    CHECK_INT(r.duplicates, 5);
    CHECK_INT(r.acked_seq, 5);
    CHECK(r.repeated_key);
    batch(&a, 3, 5, &j); /* 4..8 */
    CHECK_OK(post(db, &j, NULL, &r));
    CHECK_INT(r.stored, 3);
    CHECK_INT(r.duplicates, 2);
    CHECK_INT(r.acked_seq, 8);
    CHECK_INT(count_rows(hubpath, "SELECT count(*) FROM events"), 8);
    /* an empty batch names the head: acknowledged with the same seq */
    batch(&a, 10, 1, &j); /* no event past 10: head 10, which is not held yet */
    CHECK_CONTAINS((const char *)j.data, "\"events\":[]");
    CHECK_OK(post(db, &j, NULL, &r));
    CHECK_INT(r.stored, 0);
    CHECK_INT(r.acked_seq, 8);
    CHECK_INT(r.held_seq, 8);

    /* text with quotes, backslashes, a tab and non-ASCII survives the round trip */
    {
        struct dev h;
        char idh[DEVICE_ID_HEX_LEN + 1];
        struct audit_event ev;

        CHECK(dev_open(&h, "h", 0));
        CHECK_OK(enroll(db, &h, idh, &added));
        fill_event(&ev, 1, AUDIT_DENY);
        snprintf(ev.operator_id, sizeof(ev.operator_id), "q\"b\\s\tt \xc3\xa9");
        CHECK_OK(audit_record(h.q, &ev, NULL));
        batch(&h, 0, 10, &j);
        CHECK_OK(post(db, &j, NULL, &r));
        CHECK_INT(r.acked_seq, 1);
        dev_close(&h);
    }

    /* Idempotency-Key: the header must agree with the field */
    batch(&a, 0, 2, &j);
    CHECK_ERR(post(db, &j, "another-key", &r), POSGATE_ERR_INVALID);
    CHECK_CONTAINS(r.error, "differs");

    /* a bad signature: one hex digit of it changed */
    batch(&a, 8, 2, &j);
    {
        char *sig = strstr((char *)j.data, "\"signature\":\"");

        CHECK(sig != NULL);
        if (sig != NULL) {
            char *p = sig + strlen("\"signature\":\"") + 20;

            *p = *p == '0' ? '1' : '0';
        }
    }
    CHECK_ERR(post(db, &j, NULL, &r), POSGATE_ERR_BADSIG);
    CHECK_CONTAINS(r.error, "does not verify");
    CHECK_OK(hub_db_device(db, ida, &st));
    CHECK_INT(st.events, 8); /* nothing of the refused batch */
    /* a batch of device a relabelled as device c: c's key does not verify a's signature */
    batch(&a, 8, 2, &j);
    {
        struct buf relabel = BUF_INIT(HUB_BATCH_JSON_MAX);
        const char *p = (const char *)j.data;
        const char *hit;

        while ((hit = strstr(p, ida)) != NULL) {
            CHECK_OK(buf_append(&relabel, p, (size_t)(hit - p)));
            CHECK_OK(buf_append_str(&relabel, idc));
            p = hit + strlen(ida);
        }
        CHECK_OK(buf_append_str(&relabel, p));
        CHECK_ERR(post(db, &relabel, NULL, &r), POSGATE_ERR_BADSIG);
        buf_free(&relabel);
    }
    CHECK_OK(hub_db_device(db, ida, &st));
    CHECK(st.chain_ok);
    CHECK_INT(st.last_seq, 8);
    CHECK_INT(st.events, 8);
    CHECK_INT(st.gaps, 0);

    /* a gap: device c's events 5..8 arrive first; then 1..4 close it */
    record(&c, 1, 8);
    batch(&c, 4, 10, &j);
    CHECK_OK(post(db, &j, NULL, &r));
    CHECK_INT(r.stored, 4);
    CHECK_INT(r.acked_seq, 0);
    CHECK_INT(r.held_seq, 8);
    CHECK_INT(r.gap_from, 1);
    CHECK_INT(r.gap_to, 4);
    CHECK_OK(hub_db_device(db, idc, &st));
    CHECK_INT(st.gaps, 1);
    CHECK_INT(st.last_seq, 0);
    CHECK(st.chain_ok);
    CHECK_INT(count_rows(hubpath, "SELECT count(*) FROM gaps WHERE closed_at IS NULL"), 1);
    /* a batch that follows the head while the gap is open: held, nothing acknowledged past the
     * gap (PostgreSQL judges it from the device's head alone) */
    record(&c, 9, 2);
    batch(&c, 8, 10, &j);
    CHECK_OK(post(db, &j, NULL, &r));
    CHECK_INT(r.stored, 2);
    CHECK_INT(r.acked_seq, 0);
    CHECK_INT(r.held_seq, 10);
    CHECK_INT(count_rows(hubpath, "SELECT count(*) FROM gaps WHERE closed_at IS NULL"), 1);
    batch(&c, 0, 4, &j);
    CHECK_OK(post(db, &j, NULL, &r));
    CHECK_INT(r.stored, 4);
    CHECK_INT(r.acked_seq, 10);
    CHECK_INT(r.held_seq, 10);
    CHECK_OK(hub_db_device(db, idc, &st));
    CHECK_INT(st.gaps, 0);
    CHECK(st.chain_ok);
    CHECK_INT(count_rows(hubpath, "SELECT count(*) FROM gaps"), 1); /* recorded, closed */
    CHECK_INT(count_rows(hubpath, "SELECT count(*) FROM gaps WHERE closed_at IS NULL"), 0);

    /* an event edited on the kiosk before upload, or in a captured batch: the signed head does
     * not cover it, so the batch is refused and nothing is held against the device */
    record(&e, 1, 6);
    edit_event(e.qpath, 3);
    batch(&e, 0, 10, &j);
    CHECK_ERR(post(db, &j, NULL, &r), POSGATE_ERR_REJECTED);
    CHECK_INT(r.broken_at, 3); /* event 4 names a prev that event 3 no longer hashes to */
    CHECK_INT(r.acked_seq, 0);
    CHECK_CONTAINS(r.error, "event 3 is not covered by the signature");
    CHECK_OK(hub_db_device(db, ide, &st));
    CHECK(st.chain_ok);
    CHECK_INT(st.broken_at, 0);
    CHECK_INT(st.events, 0);
    CHECK_INT(st.breaks, 0);
    CHECK_INT(count_rows(hubpath, "SELECT count(*) FROM batches WHERE status <> 'stored'"), 0);
    /* the last event edited: its text no longer hashes to the signed head */
    batch(&e, 5, 10, &j); /* 6 only */
    edit_event(e.qpath, 6);
    batch(&e, 5, 10, &j2);
    CHECK_ERR(post(db, &j2, NULL, &r), POSGATE_ERR_REJECTED);
    CHECK_INT(r.broken_at, 6);
    CHECK_CONTAINS(r.error, "signed head");
    /* the untouched batch of 6 is still taken: the refusal changed nothing */
    CHECK_OK(post(db, &j, NULL, &r));
    CHECK_INT(r.stored, 1);
    CHECK_OK(hub_db_device(db, ide, &st));
    CHECK(st.chain_ok);

    /* an event edited after upload: the re-sent batch is not covered either */
    edit_event(a.qpath, 2);
    batch(&a, 0, 8, &j);
    CHECK_ERR(post(db, &j, NULL, &r), POSGATE_ERR_REJECTED);
    CHECK_OK(hub_db_device(db, ida, &st));
    CHECK(st.chain_ok);
    CHECK_INT(st.events, 8);
    /* a trail the device itself signed that differs from what is held (its queue lost and
     * started again under the same key): a conflict, recorded against the device */
    {
        struct dev a2;

        CHECK(dev_reopen(&a2, "a", "a2"));
        CHECK_STR(device_key_id(a2.key), ida);
        record(&a2, 1, 8);
        batch(&a2, 0, 8, &j);
        CHECK_ERR(post(db, &j, NULL, &r), POSGATE_ERR_BADHASH);
        CHECK_INT(r.broken_at, 1);
        CHECK_INT(r.acked_seq, 8);
        CHECK_CONTAINS(r.error, "conflict");
        dev_close(&a2);
    }
    CHECK_OK(hub_db_device(db, ida, &st));
    CHECK(!st.chain_ok);
    CHECK_INT(st.broken_at, 1);
    CHECK_INT(st.events, 8); /* the held events stay; the conflicting text is only recorded */
    CHECK_INT(count_rows(hubpath, "SELECT count(*) FROM chain_breaks WHERE kind = 'conflict'"), 1);
    CHECK_INT(count_rows(hubpath, "SELECT count(*) FROM events WHERE json LIKE '%clerc-%'"), 0);

    /* a full queue: ALLOWs folded into summaries that the collector counts */
    record(&f, 1, 200);
    {
        struct audit_batch_info bi;
        uint64_t since = 0;

        do {
            CHECK_OK(audit_batch_json(f.q, since, 64, &j, &bi));
            CHECK_OK(post(db, &j, NULL, &r));
            since = bi.n_events > 0 ? bi.last_seq : since;
        } while (bi.n_events > 0);
        CHECK_INT(r.acked_seq, since);
    }
    {
        struct hub_batch *hb = NULL;

        CHECK_OK(audit_batch_json(f.q, 0, 100000, &j, NULL));
        CHECK_OK(hub_batch_parse(j.data, j.len, &hb, msg, sizeof(msg)));
        for (size_t i = 0; hb != NULL && i < hb->n; i++) {
            if (strcmp(hb->ev[i].decision, "summary") == 0) {
                summaries_dev++;
                folded_dev += hb->ev[i].count;
            }
        }
        hub_batch_free(hb);
    }
    CHECK(summaries_dev > 0);

    /* stats */
    {
        cJSON *root = NULL, *d;
        const cJSON *bd, *gr;

        buf_reset(&j);
        CHECK_OK(hub_db_stats_json(db, &j));
        root = cJSON_ParseWithLength((const char *)j.data, j.len);
        CHECK(root != NULL);
        bd = cJSON_GetObjectItemCaseSensitive(root, "by_decision");
        CHECK_INT(num(root, "events"), count_rows(hubpath, "SELECT count(*) FROM events"));
        CHECK_INT(num(bd, "summary"), summaries_dev);
        CHECK_INT(num(bd, "allow_folded"), folded_dev);
        CHECK_INT(num(bd, "deny"),
                  count_rows(hubpath, "SELECT count(*) FROM events WHERE decision = 'deny'"));
        CHECK_INT(num(bd, "deny") + num(bd, "allow") + num(bd, "refer") + num(bd, "summary"),
                  num(root, "events"));
        CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "devices")), 5);
        d = stats_device(root, ida);
        CHECK(d != NULL);
        CHECK_INT(num(d, "last_seq"), 8);
        CHECK_INT(num(d, "events"), 8);
        CHECK_INT(num(d, "gaps"), 0);
        CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(d, "chain_ok")));
        CHECK_INT(num(d, "broken_at"), 1);
        d = stats_device(root, idc);
        CHECK(d != NULL && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "chain_ok")));
        gr = cJSON_GetObjectItemCaseSensitive(d, "gaps_detected");
        CHECK_INT(cJSON_GetArraySize(gr), 1);
        CHECK(stats_device(root, idb) == NULL);
        cJSON_Delete(root);
        buf_reset(&j);
        CHECK_OK(hub_db_stats_text(db, &j));
        CHECK_CONTAINS((const char *)j.data, "chain BROKEN at seq 1");
    }
    /* a gap that stays open shows in gap_ranges */
    {
        struct dev g;
        char idg[DEVICE_ID_HEX_LEN + 1];
        cJSON *root;
        const cJSON *gr;

        CHECK(dev_open(&g, "g", 0));
        CHECK_OK(enroll(db, &g, idg, &added));
        record(&g, 1, 9);
        batch(&g, 0, 3, &j);
        CHECK_OK(post(db, &j, NULL, &r));
        batch(&g, 6, 3, &j);
        CHECK_OK(post(db, &j, NULL, &r));
        CHECK_INT(r.acked_seq, 3);
        CHECK_INT(r.held_seq, 9);
        buf_reset(&j);
        CHECK_OK(hub_db_stats_json(db, &j));
        root = cJSON_ParseWithLength((const char *)j.data, j.len);
        gr = cJSON_GetObjectItemCaseSensitive(stats_device(root, idg), "gap_ranges");
        CHECK_INT(cJSON_GetArraySize(gr), 1);
        CHECK_INT(cJSON_GetArrayItem(cJSON_GetArrayItem(gr, 0), 0)->valuedouble, 4);
        CHECK_INT(cJSON_GetArrayItem(cJSON_GetArrayItem(gr, 0), 1)->valuedouble, 6);
        CHECK_INT(num(stats_device(root, idg), "gaps"), 1);
        cJSON_Delete(root);
        dev_close(&g);
    }

    if (hub_db_is_uri(hubpath)) {
        test_one_statement(hubpath, db);
    }

    /* a reopened store keeps everything */
    hub_db_close(db);
    db = NULL;
    CHECK_OK(hub_db_open(hubpath, &db, msg, sizeof(msg)));
    CHECK_OK(hub_db_device(db, idc, &st));
    CHECK_INT(st.last_seq, 10);
    CHECK_ERR(hub_db_device(db, idb, &st), POSGATE_ERR_NOTFOUND);

    /* a contest and a repair: the decision by its id, the decisions that cited a listing */
    {
        struct dev g, g2;
        char idg[DEVICE_ID_HEX_LEN + 1], did[40];
        struct audit_event ev;
        struct buf out = BUF_INIT(1 << 20);
        struct hub_prune pr;
        size_t n = 0;

        CHECK(dev_open(&g, "contest", 0));
        CHECK_OK(enroll(db, &g, idg, &added));
        for (unsigned i = 0; i < 4; i++) {
            fill_event(&ev, 0x9000 + i, i == 1 ? AUDIT_DENY : i == 2 ? AUDIT_REFER : AUDIT_ALLOW);
            if (i == 1 || i == 2) {
                ev.n_reasons = 1;
                snprintf(ev.reasons[0].kind, sizeof(ev.reasons[0].kind), "match");
                snprintf(ev.reasons[0].effect, sizeof(ev.reasons[0].effect), "deny");
                snprintf(ev.reasons[0].list, sizeof(ev.reasons[0].list), "courts");
                snprintf(ev.reasons[0].listing_id, sizeof(ev.reasons[0].listing_id), "L-7");
                snprintf(ev.reasons[0].reason, sizeof(ev.reasons[0].reason), "judgment");
            }
            ev.feed_version = 42;
            CHECK_OK(audit_record(g.q, &ev, NULL));
        }
        CHECK_OK(audit_flush(g.q));
        batch(&g, 0, 10, &j);
        CHECK_OK(post(db, &j, NULL, &r));
        CHECK_INT(r.acked_seq, 4);
        snprintf(did, sizeof(did), "%032x", 0x9001u);
        CHECK_OK(hub_db_decision(db, did, NULL, true, &out));
        CHECK_CONTAINS(buf_cstr(&out), "\"listing_id\":\"L-7\"");
        CHECK_CONTAINS(buf_cstr(&out), "\"feed_version\":42");
        CHECK_CONTAINS(buf_cstr(&out), idg);
        CHECK_CONTAINS(buf_cstr(&out), "only the ids");
        snprintf(did, sizeof(did), "%032x", 0x9999u);
        CHECK_ERR(hub_db_decision(db, did, NULL, true, &out), POSGATE_ERR_NOTFOUND);
        buf_reset(&out);
        CHECK_OK(hub_db_decisions(db, "courts", "L-7", NULL, true, &out, &n));
        CHECK_INT(n, 2);
        CHECK_OK(hub_db_decisions(db, "courts", "L-8", NULL, true, &out, &n));
        CHECK_INT(n, 0);
        CHECK_OK(hub_db_decisions(db, "courts", "L-7", "2999-01-01", false, &out, &n));
        CHECK_INT(n, 0);

        /* retention: everything pruned; the next upload links onto the anchor */
        CHECK_OK(hub_db_prune(db, 1700000200, 1700000300, &pr, msg, sizeof(msg)));
        CHECK(pr.events >= 4);
        CHECK(pr.anchors >= 1);
        CHECK_OK(hub_db_device(db, idg, &st));
        CHECK_INT(st.events, 0);
        record(&g, 0x9100, 2);
        batch(&g, 4, 10, &j);
        CHECK_OK(post(db, &j, NULL, &r));
        CHECK_INT(r.acked_seq, 6);
        CHECK_INT(r.stored, 2);
        CHECK_INT(r.gap_from, 0);
        /* a replay of pruned events (2..3, below the anchor 4): nothing stored, and no gap
         * before them (seq 1 was held, then pruned) */
        batch(&g, 1, 2, &j);
        CHECK_OK(post(db, &j, NULL, &r));
        CHECK_INT(r.stored, 0);
        CHECK_INT(r.gap_from, 0);
        CHECK_INT(r.acked_seq, 6);
        CHECK_OK(hub_db_device(db, idg, &st));
        CHECK_INT(st.gaps, 0);
        /* a continuation the device signed that does not link onto the anchor is a break */
        CHECK(dev_reopen(&g2, "contest", "contest2"));
        record(&g2, 0x9200, 7);
        batch(&g2, 4, 10, &j);
        CHECK_ERR(post(db, &j, NULL, &r), POSGATE_ERR_BADHASH);
        dev_close(&g2);
        dev_close(&g);
        buf_free(&out);
    }

    hub_db_close(db);
    dev_close(&a);
    dev_close(&b);
    dev_close(&c);
    dev_close(&e);
    dev_close(&f);
    buf_free(&j);
    buf_free(&j2);
    if (test_failures == 0) {
        char cmd[1300];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "could not remove %s\n", dir);
        }
    }
    return test_summary("hub_db");
}
