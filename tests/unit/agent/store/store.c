/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of agent/store on real SQLite files in a temporary directory: creation and reopening,
 * snapshots and deltas with their errors, rollback leaving the old version, one-transaction
 * visibility for a reader thread during updates, verification detecting rows edited behind the
 * store's back (through the sqlite3 API directly), secure deletion of removed entries, migration
 * from schema version 1, and corrupt or foreign files.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "buf.h"
#include "keyfilter.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "state_digest.h"
#include "store.h"
#include "test.h"
#include "test_files.h"

static char tmpdir[256];

static void
sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};

    nanosleep(&ts, NULL);
}

static void
path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmpdir, name);
}

static uint64_t
mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void
make_key(uint64_t seed, uint8_t key[16])
{
    uint64_t a = mix(seed), b = mix(seed ^ 0x5555);

    for (int i = 0; i < 8; i++) {
        key[i] = (uint8_t)(a >> (8 * i));
        key[8 + i] = (uint8_t)(b >> (8 * i));
    }
}

static void
make_entry(struct feed_entry *e, uint64_t seed, const char *prefix)
{
    char id[FEED_LISTING_ID_MAX + 1];

    memset(e, 0, sizeof(*e));
    make_key(seed, e->key);
    snprintf(id, sizeof(id), "%s%06u", prefix, (unsigned)(seed % 1000000));
    CHECK_OK(feed_entry_set_listing_id(e, id));
    e->reason = (uint16_t)(seed % 3);
    e->id_type = (uint8_t)(seed % 5);
    e->kind = (seed % 7 == 0) ? FEED_KIND_EXEMPT : FEED_KIND_RESTRICT;
    e->valid_from = 1700000000 + (int64_t)(seed % 1000);
    e->valid_until = (seed % 2) ? FEED_UNTIL_OPEN : e->valid_from + 86400 * 365;
    if (seed % 5 == 0) {
        e->scope_count = 2;
        e->scope[0] = 1;
        e->scope[1] = 4;
    }
}

static const char *config_json =
    "{\"feed_id\":\"t\",\"services\":[\"air\",\"air.first\",\"rail\",\"rail.hsr\","
    "\"rail.hsr.first\"],\"lists\":[{\"id\":\"a\",\"authority\":\"A\",\"stale_after\":\"7d\"},"
    "{\"id\":\"b\",\"authority\":\"B\",\"stale_after\":\"7d\"}],\"reasons\":["
    "{\"id\":\"r0\",\"authority\":\"X\",\"legal_basis\":\"L\",\"contest\":\"C\",\"scope\":[\"air\"]"
    "},"
    "{\"id\":\"r1\",\"authority\":\"X\",\"legal_basis\":\"L\",\"contest\":\"C\",\"scope\":["
    "\"rail\"]},"
    "{\"id\":\"r2\",\"authority\":\"X\",\"legal_basis\":\"L\",\"contest\":\"C\",\"scope\":[\"air\"]"
    "}]}";

/* Installs list `id` as a snapshot of entries seed0..seed0+n-1 at seq. */
static enum posgate_err
install_snapshot(struct store *s, const char *id, uint64_t seq, uint64_t seed0, unsigned n,
                 const char *prefix, struct state_digest *state_out)
{
    struct store_update *u = NULL;
    enum posgate_err err = store_begin_update(s, &u);
    struct state_digest st;

    if (err != POSGATE_OK) {
        return err;
    }
    state_digest_init(&st);
    err = store_update_set_config(u, config_json, strlen(config_json));
    if (err == POSGATE_OK) {
        err = store_list_snapshot_begin(u, id, 0);
    }
    for (unsigned i = 0; i < n && err == POSGATE_OK; i++) {
        struct feed_entry e;

        make_entry(&e, seed0 + i, prefix);
        state_digest_add(&st, &e);
        err = store_list_add(u, &e);
    }
    if (err == POSGATE_OK) {
        err = store_list_finish(u, seq, 1700000000 + (int64_t)seq, &st);
    }
    if (err != POSGATE_OK) {
        store_update_abort(u);
        return err;
    }
    if (state_out != NULL) {
        *state_out = st;
    }
    return store_update_commit(u);
}

static void
test_safety(void)
{
    struct store *s = NULL;
    char p[512], msg[STORE_ERRMSG_MAX];
    size_t n;

    path_in(p, sizeof(p), "missing.db");
    CHECK_ERR(store_open(NULL, STORE_CREATE, &s, msg, sizeof(msg)), POSGATE_ERR_INVALID);
    CHECK_ERR(store_open(p, 0, &s, msg, sizeof(msg)), POSGATE_ERR_NOTFOUND);
    CHECK_CONTAINS(msg, "does not exist");
    CHECK(s == NULL);
    CHECK_ERR(store_open(tmpdir, STORE_CREATE, &s, msg, sizeof(msg)), POSGATE_ERR_CORRUPT);
    CHECK_ERR(store_begin_update(NULL, NULL), POSGATE_ERR_INVALID);
    CHECK_ERR(store_list_add(NULL, NULL), POSGATE_ERR_INVALID);
    CHECK_ERR(store_update_commit(NULL), POSGATE_ERR_INVALID);
    store_update_abort(NULL);
    store_close(NULL);
    store_reader_free(NULL);
    store_reader_prefetch(NULL, NULL); /* a hint: nothing to do, nothing to fail */
    CHECK_ERR(store_lookup(NULL, NULL, NULL, 0, &n), POSGATE_ERR_INVALID);
    CHECK_ERR(store_verify(NULL, NULL, NULL, msg, sizeof(msg)), POSGATE_ERR_INVALID);
}

static void
test_roundtrip(void)
{
    struct store *s = NULL;
    struct store_update *u = NULL, *u2 = NULL;
    struct store_reader *r = NULL;
    struct store_meta m, got;
    struct store_list l;
    struct store_hit hits[4];
    struct state_digest st;
    struct buf cfg = BUF_INIT(1 << 20);
    const char *cc[] = {"cn", "HK"};
    char p[512], msg[STORE_ERRMSG_MAX];
    size_t n = 0;
    int ok = 1;

    path_in(p, sizeof(p), "rt.db");
    CHECK_OK(store_open(p, STORE_CREATE, &s, msg, sizeof(msg)));
    if (s == NULL) {
        return;
    }
    CHECK_ERR(store_get_config(s, &cfg), POSGATE_ERR_NOTFOUND);
    CHECK_ERR(store_get_list(s, "a", &l), POSGATE_ERR_NOTFOUND);
    memset(&m, 0, sizeof(m));
    m.feed_version = 7;
    m.root_version = 2;
    m.issued_at = 1700001000;
    m.expires_at = 1800000000;
    m.newest_issue_seen = 1700001000;
    CHECK_OK(store_begin_update(s, &u));
    CHECK_ERR(store_begin_update(s, &u2), POSGATE_ERR_STATE);
    CHECK_OK(store_update_set_meta(u, &m));
    CHECK_OK(store_update_set_jurisdictions(u, cc, 2));
    CHECK_OK(store_update_set_config(u, config_json, strlen(config_json)));
    CHECK_OK(store_list_snapshot_begin(u, "a", 0));
    state_digest_init(&st);
    for (unsigned i = 0; i < 3000; i++) {
        struct feed_entry e;

        make_entry(&e, i, "SPC-2024-");
        state_digest_add(&st, &e);
        CHECK_OK(store_list_add(u, &e));
    }
    CHECK(state_digest_equal(store_update_list_state(u), &st));
    CHECK_OK(store_list_finish(u, 5, 1700000500, &st));
    CHECK_OK(store_list_snapshot_begin(u, "b", STORE_SNAPSHOT_TRUST_STATE));
    {
        struct feed_entry e;
        struct state_digest sb;

        /* Same key as a's entry 1, another list and listing id. */
        make_entry(&e, 1, "B-");
        state_digest_init(&sb);
        state_digest_add(&sb, &e);
        CHECK_OK(store_list_add(u, &e));
        CHECK_ERR(store_list_finish(u, 1, 1700000600, NULL), POSGATE_ERR_INVALID);
    }
    store_update_abort(u);
    /* The aborted update left nothing behind. */
    CHECK_ERR(store_get_list(s, "a", &l), POSGATE_ERR_NOTFOUND);
    CHECK_ERR(store_get_meta(s, &got), POSGATE_OK);
    CHECK_INT(got.feed_version, 0);

    CHECK_OK(store_begin_update(s, &u));
    CHECK_OK(store_update_set_meta(u, &m));
    CHECK_OK(store_update_set_jurisdictions(u, cc, 2));
    CHECK_OK(store_update_set_config(u, config_json, strlen(config_json)));
    CHECK_OK(store_list_snapshot_begin(u, "a", 0));
    for (unsigned i = 0; i < 3000; i++) {
        struct feed_entry e;

        make_entry(&e, i, "SPC-2024-");
        CHECK_OK(store_list_add(u, &e));
    }
    CHECK_OK(store_list_finish(u, 5, 1700000500, &st));
    CHECK_OK(store_list_snapshot_begin(u, "b", STORE_SNAPSHOT_TRUST_STATE));
    {
        struct feed_entry e;
        struct state_digest sb;

        make_entry(&e, 1, "B-");
        state_digest_init(&sb);
        state_digest_add(&sb, &e);
        CHECK_OK(store_list_add(u, &e));
        CHECK_OK(store_list_finish(u, 1, 1700000600, &sb));
    }
    CHECK_INT(store_update_changes(u), 3001);
    CHECK_OK(store_update_commit(u));

    CHECK_OK(store_get_meta(s, &got));
    CHECK_INT(got.feed_version, 7);
    CHECK_INT(got.root_version, 2);
    CHECK_INT(got.expires_at, 1800000000);
    CHECK(got.installed_at > 0);
    CHECK_INT(got.n_jurisdictions, 2);
    CHECK_STR(got.jurisdictions[0], "CN");
    CHECK_STR(got.jurisdictions[1], "HK");
    CHECK_OK(store_get_config(s, &cfg));
    CHECK_INT(cfg.len, strlen(config_json));
    CHECK_OK(store_get_list(s, "a", &l));
    CHECK_INT(l.seq, 5);
    CHECK_INT(l.entries, 3000);
    CHECK_INT(l.issued_at, 1700000500);
    CHECK(state_digest_equal(&l.state, &st));
    CHECK(l.reasons[0] == 0x7); /* reasons 0, 1, 2 used */
    {
        struct store_list all[4];

        CHECK_OK(store_get_lists(s, all, 4, &n));
        CHECK_INT(n, 2);
    }

    CHECK_OK(store_reader_new(s, &r));
    if (r != NULL) {
        size_t nl = 0;
        const struct store_list *rl;

        CHECK_OK(store_reader_refresh(r));
        rl = store_reader_lists(r, &nl);
        CHECK_INT(nl, 2);
        CHECK(store_reader_config(r) != NULL);
        CHECK_INT(store_reader_meta(r)->feed_version, 7);
        CHECK_INT(rl[0].cfg_index, 0);
        CHECK_INT(rl[1].cfg_index, 1);
        for (unsigned i = 0; i < 3000; i++) {
            struct feed_entry want;

            make_entry(&want, i, "SPC-2024-");
            n = 0;
            if (store_lookup(r, want.key, hits, 4, &n) != POSGATE_OK || n != (i == 1 ? 2u : 1u)) {
                ok = 0;
                continue;
            }
            for (size_t j = 0; j < n; j++) {
                if (strcmp(rl[hits[j].list].id, "a") == 0) {
                    ok &= feed_entry_equal(&hits[j].e, &want);
                } else {
                    struct feed_entry wb;

                    make_entry(&wb, 1, "B-");
                    ok &= feed_entry_equal(&hits[j].e, &wb);
                }
            }
        }
        CHECK(ok);
        {
            uint8_t none[16] = {1, 2, 3};

            CHECK_OK(store_lookup(r, none, hits, 4, &n));
            CHECK_INT(n, 0);
            /* cap smaller than the rows: n says how many there were. */
            make_key(1, none);
            CHECK_OK(store_lookup(r, none, hits, 1, &n));
            CHECK_INT(n, 2);
        }
    }
    store_reader_free(r);
    CHECK_OK(store_verify(s, NULL, NULL, msg, sizeof(msg)));
    store_close(s);
    /* Reopen: everything is still there. */
    s = NULL;
    CHECK_OK(store_open(p, 0, &s, msg, sizeof(msg)));
    if (s != NULL) {
        CHECK_OK(store_get_list(s, "a", &l));
        CHECK_INT(l.entries, 3000);
        CHECK_OK(store_verify(s, NULL, NULL, msg, sizeof(msg)));
    }
    store_close(s);
    buf_free(&cfg);
}

/* Applies a delta to list a (installed at seq 1 with entries 0..999) and returns the result. */
static enum posgate_err
try_delta(struct store *s, uint64_t base, const uint64_t *rm, size_t nrm, const uint64_t *add,
          size_t nadd, bool add_first, bool wrong_digest)
{
    struct store_update *u = NULL;
    struct store_list l;
    struct state_digest st;
    enum posgate_err err;

    CHECK_OK(store_get_list(s, "a", &l));
    st = l.state;
    err = store_begin_update(s, &u);
    if (err != POSGATE_OK) {
        return err;
    }
    err = store_list_delta_begin(u, "a", base);
    if (err == POSGATE_OK && add_first && nadd > 0) {
        struct feed_entry e;

        make_entry(&e, add[0], "SPC-");
        state_digest_add(&st, &e);
        err = store_list_add(u, &e);
    }
    for (size_t i = 0; i < nrm && err == POSGATE_OK; i++) {
        struct feed_entry e, rem;

        make_entry(&e, rm[i], "SPC-");
        state_digest_remove(&st, &e);
        memset(&rem, 0, sizeof(rem));
        memcpy(rem.key, e.key, 16);
        CHECK_OK(feed_entry_set_listing_id(&rem, e.listing_id));
        err = store_list_remove(u, &rem);
    }
    for (size_t i = add_first ? 1 : 0; i < nadd && err == POSGATE_OK; i++) {
        struct feed_entry e;

        make_entry(&e, add[i], "SPC-");
        state_digest_add(&st, &e);
        err = store_list_add(u, &e);
    }
    if (err == POSGATE_OK) {
        if (wrong_digest) {
            st.lane[3] ^= 1;
        }
        err = store_list_finish(u, base + 1, 1700000000, &st);
    }
    if (err != POSGATE_OK) {
        /* A poisoned update refuses everything, then rolls back on commit. */
        CHECK_ERR(store_list_finish(u, base + 1, 0, NULL), POSGATE_ERR_STATE);
        CHECK_ERR(store_update_commit(u), err);
        return err;
    }
    return store_update_commit(u);
}

static bool
has_key(struct store *s, uint64_t seed)
{
    struct store_reader *r = NULL;
    struct store_hit h[2];
    struct feed_entry e;
    size_t n = 0;

    make_entry(&e, seed, "SPC-");
    CHECK_OK(store_reader_new(s, &r));
    CHECK_OK(store_lookup(r, e.key, h, 2, &n));
    store_reader_free(r);
    return n > 0;
}

/* A snapshot with an entry twice, in a full batch of the multi-row insert and in the last,
 * partial one: refused naming the listing, the installed list untouched; sizes around the
 * batch length install every entry. */
static enum posgate_err
snapshot_with_dup(struct store *s, unsigned n, unsigned dup_at)
{
    struct store_update *u = NULL;
    enum posgate_err err = store_begin_update(s, &u);

    if (err != POSGATE_OK) {
        return err;
    }
    err = store_update_set_config(u, config_json, strlen(config_json));
    if (err == POSGATE_OK) {
        err = store_list_snapshot_begin(u, "a", STORE_SNAPSHOT_TRUST_STATE);
    }
    for (unsigned i = 0; i < n && err == POSGATE_OK; i++) {
        struct feed_entry e;

        make_entry(&e, 7000 + (i == dup_at ? i - 1 : i), "SPC-");
        err = store_list_add(u, &e);
    }
    if (err == POSGATE_OK) {
        err = store_list_finish(u, 9, 1700000009, NULL);
    }
    if (err == POSGATE_OK) {
        err = store_update_commit(u);
    } else {
        store_update_abort(u);
    }
    return err;
}

static void
test_snapshot_batches(void)
{
    static const unsigned sizes[] = {63, 64, 65, 128, 200};
    static const unsigned dups[][2] = {{200, 100}, {200, 199}, {64, 63}, {65, 64}};
    struct store *s = NULL;
    struct store_list l;
    char p[512], msg[STORE_ERRMSG_MAX];

    path_in(p, sizeof(p), "batches.db");
    CHECK_OK(store_open(p, STORE_CREATE, &s, msg, sizeof(msg)));
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        CHECK_OK(install_snapshot(s, "a", i + 1, 0, sizes[i], "SPC-", NULL));
        CHECK_OK(store_get_list(s, "a", &l));
        CHECK_INT(l.entries, sizes[i]);
        CHECK(has_key(s, 0));
        CHECK(has_key(s, sizes[i] - 1));
        CHECK(!has_key(s, sizes[i]));
    }
    for (size_t i = 0; i < sizeof dups / sizeof dups[0]; i++) {
        char want[64];

        CHECK_ERR(snapshot_with_dup(s, dups[i][0], dups[i][1]), POSGATE_ERR_REJECTED);
        snprintf(want, sizeof want, "listing \"SPC-%06u\" is added but already present",
                 7000 + dups[i][1] - 1);
        CHECK_CONTAINS(store_errmsg(s), want);
        CHECK_OK(store_get_list(s, "a", &l));
        CHECK_INT(l.seq, 5);
        CHECK_INT(l.entries, 200);
        CHECK(has_key(s, 199));
    }
    store_close(s);
}

/* An entry whose key is hi (big-endian) then a mix of hi: keys rise with hi, and lists given
 * other values of hi interleave in key order, as lists do in entries. */
static void
sorted_entry(struct feed_entry *e, uint64_t seed, uint64_t hi, const char *prefix)
{
    uint64_t lo = mix(hi);

    make_entry(e, seed, prefix);
    for (int b = 0; b < 8; b++) {
        e->key[b] = (uint8_t)(hi >> (56 - 8 * b));
        e->key[8 + b] = (uint8_t)(lo >> (56 - 8 * b));
    }
}

static size_t
hits_of(struct store *s, const uint8_t key[16])
{
    struct store_reader *r = NULL;
    struct store_hit h[4];
    size_t n = 0;

    CHECK_OK(store_reader_new(s, &r));
    CHECK_OK(store_lookup(r, key, h, 4, &n));
    store_reader_free(r);
    return n;
}

/* List a for runs: n entries in key order, every 50th key carrying a second listing whose
 * template comes later but whose listing id sorts first (rows of one key out of (t, n) order);
 * with dup_at < n, entry dup_at is given twice in a row; with back_at < n, entry back_at has a
 * key below its predecessor's. */
static enum posgate_err
add_sorted_a(struct store_update *u, unsigned n, unsigned dup_at, unsigned back_at,
             struct state_digest *st)
{
    enum posgate_err err = store_list_snapshot_begin(u, "a", 0);

    for (unsigned i = 0; i < n && err == POSGATE_OK; i++) {
        struct feed_entry e;
        uint64_t hi = (i == back_at ? i - 2 : i) * 16;

        if (i % 50 == 1) {
            sorted_entry(&e, 500000 + i, hi, "OLD-");
            state_digest_add(st, &e);
            err = store_list_add(u, &e);
        }
        sorted_entry(&e, i, hi, "SPC-");
        state_digest_add(st, &e);
        if (err == POSGATE_OK) {
            err = store_list_add(u, &e);
        }
        if (err == POSGATE_OK && i == dup_at) {
            err = store_list_add(u, &e);
        }
    }
    return err;
}

/* The rows of an update's snapshots wait in sorted runs and are merged into entries before
 * the commit (store_runs.c): two interleaved lists in one update, keys shared across lists
 * and within one; a key out of order half-way (the waiting rows go in, the rest directly); an
 * entry given twice (refused by the commit, the old version kept); a delta and a drop after a
 * snapshot in the same update (the runs go in first). */
static void
test_sorted_runs(void)
{
    struct store *s = NULL;
    struct store_update *u = NULL;
    struct store_list l;
    struct state_digest sa, sb;
    struct feed_entry e;
    char p[512], msg[STORE_ERRMSG_MAX];
    size_t missing = 0;

    path_in(p, sizeof(p), "runs.db");
    CHECK_OK(store_open(p, STORE_CREATE, &s, msg, sizeof(msg)));
    if (s == NULL) {
        return;
    }
    state_digest_init(&sa);
    state_digest_init(&sb);
    CHECK_OK(store_begin_update(s, &u));
    CHECK_OK(store_update_set_config(u, config_json, strlen(config_json)));
    CHECK_OK(add_sorted_a(u, 3000, 3000, 3000, &sa));
    CHECK_OK(store_list_finish(u, 1, 1700000001, &sa));
    CHECK_OK(store_list_snapshot_begin(u, "b", 0));
    for (unsigned i = 0; i < 2000; i++) { /* every 10th key is one of a's */
        sorted_entry(&e, 900000 + i, i % 10 == 0 ? 16 * i : 16 * i + 8, "B-");
        state_digest_add(&sb, &e);
        CHECK_OK(store_list_add(u, &e));
    }
    CHECK_OK(store_list_finish(u, 1, 1700000001, &sb));
    CHECK_OK(store_update_commit(u));
    for (unsigned i = 0; i < 3000; i++) {
        size_t want = 1 + (i % 50 == 1) + (i < 2000 && i % 10 == 0);

        sorted_entry(&e, i, 16 * i, "SPC-");
        missing += hits_of(s, e.key) != want;
    }
    for (unsigned i = 0; i < 2000; i += 10) {
        sorted_entry(&e, 0, 16 * i + 8 * (i % 10 != 0), "B-");
        missing += hits_of(s, e.key) == 0;
    }
    CHECK_INT(missing, 0);
    CHECK_OK(store_get_list(s, "a", &l));
    CHECK_INT(l.entries, 3000 + 60);
    CHECK_OK(store_verify(s, NULL, NULL, msg, sizeof(msg)));

    /* a key out of order after 1000 rows of runs */
    state_digest_init(&sa);
    CHECK_OK(store_begin_update(s, &u));
    CHECK_OK(add_sorted_a(u, 2500, 2500, 1000, &sa));
    CHECK_OK(store_list_finish(u, 2, 1700000002, &sa));
    CHECK_OK(store_update_commit(u));
    CHECK_OK(store_get_list(s, "a", &l));
    CHECK_INT(l.entries, 2500 + 50);
    CHECK_OK(store_verify(s, NULL, NULL, msg, sizeof(msg)));
    sorted_entry(&e, 999, 16 * 999, "SPC-");
    CHECK(hits_of(s, e.key) == 1);

    /* an entry twice: refused, the installed version kept */
    state_digest_init(&sa);
    CHECK_OK(store_begin_update(s, &u));
    CHECK_OK(add_sorted_a(u, 2000, 700, 2000, &sa));
    CHECK_OK(store_list_finish(u, 3, 1700000003, NULL));
    CHECK_ERR(store_update_commit(u), POSGATE_ERR_REJECTED);
    CHECK_CONTAINS(store_errmsg(s), "already present");
    CHECK_OK(store_get_list(s, "a", &l));
    CHECK_INT(l.seq, 2);
    CHECK_INT(l.entries, 2500 + 50);

    /* a snapshot, then a delta of another list and a drop of this one in the same update */
    state_digest_init(&sa);
    CHECK_OK(store_begin_update(s, &u));
    CHECK_OK(add_sorted_a(u, 1500, 1500, 1500, &sa));
    CHECK_OK(store_list_finish(u, 4, 1700000004, &sa));
    CHECK_OK(store_list_delta_begin(u, "b", 1));
    sorted_entry(&e, 900000 + 3, 16 * 3 + 8, "B-");
    CHECK_OK(store_list_remove(u, &e));
    CHECK_OK(store_list_finish(u, 2, 1700000004, NULL));
    CHECK_OK(store_update_commit(u));
    sorted_entry(&e, 1499, 16 * 1499, "SPC-");
    CHECK(hits_of(s, e.key) == 1);
    CHECK_OK(store_begin_update(s, &u));
    state_digest_init(&sa);
    CHECK_OK(add_sorted_a(u, 1200, 1200, 1200, &sa));
    CHECK_OK(store_list_finish(u, 5, 1700000005, &sa));
    CHECK_OK(store_list_drop(u, "a"));
    CHECK_OK(store_update_commit(u));
    CHECK_ERR(store_get_list(s, "a", &l), POSGATE_ERR_NOTFOUND);
    sorted_entry(&e, 5, 16 * 5, "SPC-");
    CHECK(hits_of(s, e.key) == 0);
    CHECK_OK(store_verify(s, NULL, NULL, msg, sizeof(msg)));
    store_close(s);
}

/* The descriptor of this process's open file whose path holds part (an unlinked file too), or
 * -1. */
static int
open_fd_named(const char *part)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    int found = -1;

    while (d != NULL && found < 0 && (de = readdir(d)) != NULL) {
        char link[300], target[1024];
        ssize_t n;

        snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
        n = readlink(link, target, sizeof(target) - 1);
        if (n > 0) {
            target[n] = 0;
            if (strstr(target, part) != NULL) {
                found = (int)strtol(de->d_name, NULL, 10);
            }
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    return found;
}

/* A run whose bytes change on disk between written and merged fails the commit (IO, the
 * checksum named), whichever thread reads it back, and the installed version stays. */
static void
test_sorted_runs_damaged(void)
{
    struct store *s = NULL;
    struct store_update *u = NULL;
    struct store_list l;
    struct state_digest sa;
    char p[512], msg[STORE_ERRMSG_MAX];
    uint8_t b = 0;
    int fd;

    path_in(p, sizeof(p), "runs-damaged.db");
    CHECK_OK(store_open(p, STORE_CREATE, &s, msg, sizeof(msg)));
    if (s == NULL) {
        return;
    }
    CHECK_OK(install_snapshot(s, "a", 1, 0, 100, "SPC-", NULL));
    state_digest_init(&sa);
    CHECK_OK(store_begin_update(s, &u));
    /* 20,000 rows: more than the run's write buffer, so its first bytes are on disk */
    CHECK_OK(add_sorted_a(u, 20000, 20000, 20000, &sa));
    CHECK_OK(store_list_finish(u, 2, 1700000002, &sa));
    fd = open_fd_named(".rows.tmp");
    CHECK(fd >= 0);
    if (fd >= 0) { /* the second byte of the first row's key */
        CHECK(pread(fd, &b, 1, 1) == 1);
        b = (uint8_t)(b ^ 0x01);
        CHECK(pwrite(fd, &b, 1, 1) == 1);
    }
    CHECK_ERR(store_update_commit(u), POSGATE_ERR_IO);
    CHECK_CONTAINS(store_errmsg(s), "changed on disk");
    CHECK_OK(store_get_list(s, "a", &l));
    CHECK_INT(l.seq, 1);
    CHECK_INT(l.entries, 100);
    CHECK_OK(store_verify(s, NULL, NULL, msg, sizeof(msg)));
    store_close(s);
}

static void
test_deltas(void)
{
    struct store *s = NULL;
    struct store_list l;
    char p[512], msg[STORE_ERRMSG_MAX];
    uint64_t rm[] = {3, 4}, add[] = {5000, 5001}, missing[] = {4000}, existing[] = {10};

    path_in(p, sizeof(p), "delta.db");
    CHECK_OK(store_open(p, STORE_CREATE, &s, msg, sizeof(msg)));
    if (s == NULL) {
        return;
    }
    CHECK_OK(install_snapshot(s, "a", 1, 0, 1000, "SPC-", NULL));
    /* Every refusal leaves seq 1 and entries 3, 4 in place, 5000 absent. */
    CHECK_ERR(try_delta(s, 0, rm, 2, add, 2, false, false), POSGATE_ERR_REJECTED);
    CHECK_CONTAINS(store_errmsg(s), "expected the installed seq 1");
    CHECK_ERR(try_delta(s, 1, missing, 1, add, 2, false, false), POSGATE_ERR_REJECTED);
    CHECK_CONTAINS(store_errmsg(s), "removed but not present");
    CHECK_ERR(try_delta(s, 1, rm, 2, existing, 1, false, false), POSGATE_ERR_REJECTED);
    CHECK_CONTAINS(store_errmsg(s), "already present");
    CHECK_ERR(try_delta(s, 1, rm, 2, add, 2, true, false), POSGATE_ERR_REJECTED);
    CHECK_CONTAINS(store_errmsg(s), "removals come first");
    CHECK_ERR(try_delta(s, 1, rm, 2, add, 2, false, true), POSGATE_ERR_REJECTED);
    CHECK_CONTAINS(store_errmsg(s), "digest mismatch");
    CHECK_OK(store_get_list(s, "a", &l));
    CHECK_INT(l.seq, 1);
    CHECK_INT(l.entries, 1000);
    CHECK(has_key(s, 3));
    CHECK(has_key(s, 4));
    CHECK(!has_key(s, 5000));
    CHECK_OK(store_verify(s, NULL, NULL, msg, sizeof(msg)));
    /* Delta for a list that is not installed. */
    {
        struct store_update *u = NULL;

        CHECK_OK(store_begin_update(s, &u));
        CHECK_ERR(store_list_delta_begin(u, "zz", 0), POSGATE_ERR_REJECTED);
        CHECK_CONTAINS(store_errmsg(s), "not installed");
        store_update_abort(u);
    }
    /* The good delta. */
    CHECK_OK(try_delta(s, 1, rm, 2, add, 2, false, false));
    CHECK_OK(store_get_list(s, "a", &l));
    CHECK_INT(l.seq, 2);
    CHECK_INT(l.entries, 1000);
    CHECK(!has_key(s, 3));
    CHECK(!has_key(s, 4));
    CHECK(has_key(s, 5000));
    CHECK(has_key(s, 5001));
    CHECK_OK(store_verify(s, NULL, NULL, msg, sizeof(msg)));
    /* A snapshot older than installed is a rollback; a newer one replaces everything. */
    CHECK_ERR(install_snapshot(s, "a", 1, 0, 10, "SPC-", NULL), POSGATE_ERR_ROLLBACK);
    CHECK_OK(store_get_list(s, "a", &l));
    CHECK_INT(l.entries, 1000);
    CHECK_OK(install_snapshot(s, "b", 1, 100000, 50, "B-", NULL));
    CHECK_OK(install_snapshot(s, "a", 3, 20000, 10, "SPC-", NULL));
    CHECK_OK(store_get_list(s, "a", &l));
    CHECK_INT(l.entries, 10);
    CHECK(!has_key(s, 5000));
    CHECK(has_key(s, 20005));
    CHECK_OK(store_verify(s, NULL, NULL, msg, sizeof(msg)));
    /* Dropping a list. */
    {
        struct store_update *u = NULL;

        CHECK_OK(store_begin_update(s, &u));
        CHECK_ERR(store_list_drop(u, "nope"), POSGATE_ERR_NOTFOUND);
        CHECK_OK(store_list_drop(u, "b"));
        CHECK_OK(store_update_commit(u));
        CHECK_ERR(store_get_list(s, "b", &l), POSGATE_ERR_NOTFOUND);
        CHECK_OK(store_verify(s, NULL, NULL, msg, sizeof(msg)));
    }
    store_close(s);
}

/* ------------------------------------------------------------ one-transaction visibility */

struct vis {
    struct store *s;
    atomic_int stop;
    atomic_int checks;
    atomic_int mixed;
    atomic_int errors;
    atomic_int versions_seen;
};

static void *
reader_thread(void *arg)
{
    struct vis *v = arg;
    struct store_reader *r = NULL;
    uint8_t ka[16], kb[16];
    uint64_t last_gen = 0;

    make_key(999001, ka);
    make_key(999002, kb);
    if (store_reader_new(v->s, &r) != POSGATE_OK) {
        atomic_fetch_add(&v->errors, 1);
        return NULL;
    }
    store_reader_set_renew_ms(r, 0);
    while (!atomic_load(&v->stop)) {
        struct store_hit ha[2], hb[2];
        size_t na = 0, nb = 0, nl = 0;
        const struct store_list *lists;

        if (store_reader_refresh(r) != POSGATE_OK ||
            store_lookup_current(r, ka, ha, 2, &na) != POSGATE_OK ||
            store_lookup_current(r, kb, hb, 2, &nb) != POSGATE_OK) {
            atomic_fetch_add(&v->errors, 1);
            break;
        }
        lists = store_reader_lists(r, &nl);
        atomic_fetch_add(&v->checks, 1);
        if (store_reader_generation(r) != last_gen) {
            last_gen = store_reader_generation(r);
            atomic_fetch_add(&v->versions_seen, 1);
        }
        if (na != nb || nl != 2) {
            if (!(na == 0 && nb == 0 && nl == 0)) {
                atomic_fetch_add(&v->mixed, 1);
            }
            continue;
        }
        if (na == 1) {
            /* Listing ids "A-0000vv" and "B-0000vv" carry the version; lists carry seq vv. */
            if (strcmp(ha[0].e.listing_id + 2, hb[0].e.listing_id + 2) != 0 ||
                lists[0].seq != lists[1].seq ||
                strtoull(ha[0].e.listing_id + 2, NULL, 10) != lists[0].seq) {
                atomic_fetch_add(&v->mixed, 1);
            }
        }
    }
    store_reader_free(r);
    return NULL;
}

static void
test_visibility(void)
{
    struct vis v;
    pthread_t th[2];
    char p[512], msg[STORE_ERRMSG_MAX];

    memset(&v, 0, sizeof(v));
    path_in(p, sizeof(p), "vis.db");
    CHECK_OK(store_open(p, STORE_CREATE, &v.s, msg, sizeof(msg)));
    if (v.s == NULL) {
        return;
    }
    for (int i = 0; i < 2; i++) {
        CHECK_INT(pthread_create(&th[i], NULL, reader_thread, &v), 0);
    }
    for (uint64_t ver = 1; ver <= 40; ver++) {
        struct store_update *u = NULL;
        struct feed_entry e;

        CHECK_OK(store_begin_update(v.s, &u));
        CHECK_OK(store_update_set_config(u, config_json, strlen(config_json)));
        for (int li = 0; li < 2; li++) {
            char id[16];

            CHECK_OK(store_list_snapshot_begin(u, li == 0 ? "a" : "b", 0));
            for (unsigned i = 0; i < 300; i++) {
                make_entry(&e, 10000u * (unsigned)li + i + ver, li == 0 ? "A-" : "B-");
                CHECK_OK(store_list_add(u, &e));
            }
            make_entry(&e, 999001u + (unsigned)li, "X-");
            snprintf(id, sizeof(id), "%s%06u", li == 0 ? "A-" : "B-", (unsigned)ver);
            CHECK_OK(feed_entry_set_listing_id(&e, id));
            CHECK_OK(store_list_add(u, &e));
            CHECK_OK(store_list_finish(u, ver, 0, NULL));
            /* Give the readers a chance to run in the middle of the update. */
            sleep_us(2000);
        }
        CHECK_OK(store_update_commit(u));
        sleep_us(3000);
    }
    atomic_store(&v.stop, 1);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
    }
    CHECK_INT(atomic_load(&v.errors), 0);
    CHECK_INT(atomic_load(&v.mixed), 0);
    CHECK(atomic_load(&v.checks) > 100);
    CHECK(atomic_load(&v.versions_seen) > 4); /* readers did move between versions */
    store_close(v.s);
}

/* ------------------------------------------------------------ verify, secure delete, files */

static void
raw_exec(const char *path, const char *sql, const uint8_t *key)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;

    CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_INT(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (st == NULL) {
        fprintf(stderr, "raw_exec: %s: %s\n", sql, sqlite3_errmsg(db));
    }
    if (key != NULL) {
        sqlite3_bind_blob(st, 1, key, 16, SQLITE_STATIC);
    }
    CHECK_INT(sqlite3_step(st), SQLITE_DONE);
    if (key != NULL) {
        CHECK_INT(sqlite3_changes(db), 1);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void
test_verify_detects_edits(void)
{
    struct store *s = NULL;
    char p[512], msg[STORE_ERRMSG_MAX];
    uint8_t key[16];
    const char *edits[] = {
        "UPDATE entries SET f = f + 1 WHERE k = ?1",
        "UPDATE entries SET a = (a | 1) - (a & 1) WHERE k = ?1",
        "UPDATE entries SET u = 1900000000 WHERE k = ?1",
        "UPDATE entries SET n = n + 1 WHERE k = ?1",
        "DELETE FROM entries WHERE k = ?1",
    };

    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
        char name[32];

        snprintf(name, sizeof(name), "edit%zu.db", i);
        path_in(p, sizeof(p), name);
        CHECK_OK(store_open(p, STORE_CREATE, &s, msg, sizeof(msg)));
        if (s == NULL) {
            return;
        }
        CHECK_OK(install_snapshot(s, "a", 1, 0, 500, "SPC-", NULL));
        CHECK_OK(install_snapshot(s, "b", 1, 7000, 20, "B-", NULL));
        CHECK_OK(store_verify(s, NULL, NULL, msg, sizeof(msg)));
        make_key(42, key);
        raw_exec(p, edits[i], key);
        msg[0] = 0;
        CHECK_ERR(store_verify(s, NULL, NULL, msg, sizeof(msg)), POSGATE_ERR_REJECTED);
        CHECK_CONTAINS(msg, "list \"a\"");
        store_close(s);
        s = NULL;
    }
    /* A row added behind the store's back, and a tampered stored state. */
    path_in(p, sizeof(p), "edit_add.db");
    CHECK_OK(store_open(p, STORE_CREATE, &s, msg, sizeof(msg)));
    if (s == NULL) {
        return;
    }
    CHECK_OK(install_snapshot(s, "a", 1, 0, 50, "SPC-", NULL));
    make_key(777777, key);
    raw_exec(p, "INSERT INTO entries SELECT ?1, t, n, a, f, u, s FROM entries LIMIT 1", key);
    CHECK_ERR(store_verify(s, NULL, NULL, msg, sizeof(msg)), POSGATE_ERR_REJECTED);
    raw_exec(p, "DELETE FROM entries WHERE k = ?1", key);
    CHECK_OK(store_verify(s, NULL, NULL, msg, sizeof(msg)));
    raw_exec(p, "UPDATE lists SET digest = '00' || substr(digest, 3)", NULL);
    CHECK_ERR(store_verify(s, NULL, NULL, msg, sizeof(msg)), POSGATE_ERR_REJECTED);
    CHECK_CONTAINS(msg, "stored digest");
    store_close(s);
}

/* Whether the 16 bytes occur in the file. */
static bool
file_has(const char *path, const uint8_t *needle)
{
    struct buf b = BUF_INIT((size_t)1 << 30);
    bool found = false;

    if (plat_read_file(path, &b) != POSGATE_OK) {
        buf_free(&b);
        return false;
    }
    for (size_t i = 0; i + 16 <= b.len && !found; i++) {
        found = b.data[i] == needle[0] && memcmp(b.data + i, needle, 16) == 0;
    }
    buf_free(&b);
    return found;
}

static void
test_secure_delete(void)
{
    struct store *s = NULL;
    char p[512], wal[600], msg[STORE_ERRMSG_MAX];
    struct feed_entry e;
    uint64_t rm[] = {123};

    path_in(p, sizeof(p), "secdel.db");
    snprintf(wal, sizeof(wal), "%s-wal", p);
    CHECK_OK(store_open(p, STORE_CREATE, &s, msg, sizeof(msg)));
    if (s == NULL) {
        return;
    }
    CHECK_OK(install_snapshot(s, "a", 1, 0, 1000, "SPC-", NULL));
    make_entry(&e, 123, "SPC-");
    CHECK(file_has(p, e.key) || file_has(wal, e.key)); /* the probe can see the key */
    CHECK_OK(try_delta(s, 1, rm, 1, NULL, 0, false, false));
    CHECK(!has_key(s, 123));
    /* the delta only marked the row removed (recent); the merge deletes and zeroes it */
    CHECK(file_has(p, e.key) || file_has(wal, e.key));
    {
        uint64_t moved = 0;
        bool more = true;

        CHECK_OK(store_merge_step(s, 16, &moved, &more));
        CHECK_INT(moved, 1);
        CHECK(!more);
    }
    CHECK(!has_key(s, 123));
    CHECK(!file_has(p, e.key));
    CHECK(!file_has(wal, e.key));
    store_close(s);
    CHECK(!file_has(p, e.key));
}

/* ---- recent: deltas against a model, merged at random points ---- */

#define MODEL_KEYS 400

/* Seed i's entry in version v (v > 0): the same identity (key, listing id), other values. */
static void
model_entry(struct feed_entry *e, uint64_t i, unsigned v)
{
    make_entry(e, i, "SPC-");
    e->valid_from += (int64_t)v * 1000000;
    if (e->valid_until != FEED_UNTIL_OPEN) {
        e->valid_until += (int64_t)v * 1000000;
    }
}

static enum posgate_err
model_delta(struct store *s, uint64_t base, const unsigned *before, const unsigned *after)
{
    struct store_update *u = NULL;
    struct store_list l;
    struct state_digest st;
    enum posgate_err err;

    CHECK_OK(store_get_list(s, "a", &l));
    st = l.state;
    err = store_begin_update(s, &u);
    if (err == POSGATE_OK) {
        err = store_list_delta_begin(u, "a", base);
    }
    for (uint64_t i = 0; i < MODEL_KEYS && err == POSGATE_OK; i++) {
        struct feed_entry e, rem;

        if (before[i] == 0 || before[i] == after[i]) {
            continue;
        }
        model_entry(&e, i, before[i]);
        state_digest_remove(&st, &e);
        memset(&rem, 0, sizeof(rem));
        memcpy(rem.key, e.key, 16);
        CHECK_OK(feed_entry_set_listing_id(&rem, e.listing_id));
        err = store_list_remove(u, &rem);
    }
    for (uint64_t i = 0; i < MODEL_KEYS && err == POSGATE_OK; i++) {
        struct feed_entry e;

        if (after[i] == 0 || before[i] == after[i]) {
            continue;
        }
        model_entry(&e, i, after[i]);
        state_digest_add(&st, &e);
        err = store_list_add(u, &e);
    }
    if (err == POSGATE_OK) {
        err = store_list_finish(u, base + 1, 1700000000, &st);
    }
    if (err == POSGATE_OK) {
        return store_update_commit(u);
    }
    store_update_abort(u);
    return err;
}

/* Every key answers as the model says, through r and through a new reader. */
static void
model_check(struct store *s, struct store_reader *r, const unsigned *want, int round)
{
    struct store_reader *fresh = NULL;
    char msg[STORE_ERRMSG_MAX];
    unsigned bad = 0;

    CHECK_OK(store_reader_new(s, &fresh));
    for (uint64_t i = 0; i < MODEL_KEYS; i++) {
        struct store_reader *rr[2] = {r, fresh};
        struct feed_entry e;

        model_entry(&e, i, want[i] > 0 ? want[i] : 1);
        for (int j = 0; j < 2; j++) {
            struct store_hit h[3];
            size_t n = 9;

            CHECK_OK(store_lookup(rr[j], e.key, h, 3, &n));
            if (n != (want[i] > 0 ? 1u : 0u) ||
                (n == 1 && (h[0].e.valid_from != e.valid_from ||
                            strcmp(h[0].e.listing_id, e.listing_id) != 0))) {
                bad++;
            }
        }
    }
    if (bad != 0) {
        fprintf(stderr, "recent model, round %d: %u lookups differ from the model\n", round, bad);
    }
    CHECK_INT(bad, 0);
    msg[0] = 0;
    CHECK_OK(store_verify(s, NULL, NULL, msg, sizeof(msg)));
    if (msg[0]) {
        fprintf(stderr, "recent model, round %d: %s\n", round, msg);
    }
    store_reader_free(fresh);
}

static void
test_recent_model(void)
{
    struct store *s = NULL;
    struct store_reader *r = NULL;
    char p[512], msg[STORE_ERRMSG_MAX];
    unsigned model[MODEL_KEYS], next[MODEL_KEYS];
    uint64_t rng = 0x5eed, seq = 1, rows = 0, total = 0, moved = 0;
    bool more = false;

    path_in(p, sizeof(p), "recent.db");
    CHECK_OK(store_open(p, STORE_CREATE, &s, msg, sizeof(msg)));
    if (s == NULL) {
        return;
    }
    /* version 1 of keys 0..199 (model_entry(i, 1) is make_entry(i) moved by 1e6 s) */
    {
        struct store_update *u = NULL;
        struct state_digest st;

        state_digest_init(&st);
        CHECK_OK(store_begin_update(s, &u));
        CHECK_OK(store_update_set_config(u, config_json, strlen(config_json)));
        CHECK_OK(store_list_snapshot_begin(u, "a", 0));
        for (uint64_t i = 0; i < MODEL_KEYS; i++) {
            struct feed_entry e;

            model[i] = i < MODEL_KEYS / 2 ? 1 : 0;
            if (model[i]) {
                model_entry(&e, i, 1);
                state_digest_add(&st, &e);
                CHECK_OK(store_list_add(u, &e));
            }
        }
        CHECK_OK(store_list_finish(u, seq, 1700000000, &st));
        CHECK_OK(store_update_commit(u));
    }
    CHECK_OK(store_reader_new(s, &r));
    model_check(s, r, model, 0);
    for (int round = 1; round <= 40; round++) {
        /* a tenth of the keys change: removed, added, or replaced by another version */
        memcpy(next, model, sizeof(next));
        for (uint64_t i = 0; i < MODEL_KEYS; i++) {
            if (mix(rng++) % 10 == 0) {
                next[i] = model[i] > 0 && mix(rng++) % 2 ? 0 : (unsigned)round + 1;
            }
        }
        CHECK_OK(model_delta(s, seq, model, next));
        seq++;
        memcpy(model, next, sizeof(model));
        model_check(s, r, model, round);
        CHECK_OK(store_recent_rows(s, &rows, &total));
        CHECK(rows > 0);
        /* merge none, some or all of it, in small chunks */
        switch (mix(rng++) % 3) {
        case 0:
            break;
        case 1:
            for (int k = 0; k < 3; k++) {
                CHECK_OK(store_merge_step(s, 2 + (size_t)(mix(rng++) % 6), &moved, &more));
                model_check(s, r, model, round);
            }
            break;
        default:
            do {
                CHECK_OK(store_merge_step(s, 2 + (size_t)(mix(rng++) % 40), &moved, &more));
            } while (more);
            CHECK_OK(store_recent_rows(s, &rows, &total));
            CHECK_INT(rows, 0);
            model_check(s, r, model, round);
        }
    }
    /* refusals against what recent holds: an addition of a visible entry, in entries or in
     * recent, and a removal of an entry removed before */
    {
        unsigned dup[MODEL_KEYS];
        uint64_t in_recent = MODEL_KEYS, removed = MODEL_KEYS;

        memcpy(next, model, sizeof(next));
        for (uint64_t i = 0; i < MODEL_KEYS; i++) {
            if (model[i] == 0 && removed == MODEL_KEYS) {
                removed = i;
            } else if (model[i] == 0) {
                next[i] = 99;
                in_recent = i;
                break;
            }
        }
        CHECK(in_recent < MODEL_KEYS && removed < MODEL_KEYS);
        CHECK_OK(model_delta(s, seq, model, next));
        seq++;
        memcpy(model, next, sizeof(model));
        memcpy(dup, model, sizeof(dup));
        dup[in_recent] = 0; /* remove it, then add it back twice: the second is refused */
        {
            struct store_update *u = NULL;
            struct feed_entry e;

            CHECK_OK(store_begin_update(s, &u));
            CHECK_OK(store_list_delta_begin(u, "a", seq));
            model_entry(&e, in_recent, 99);
            CHECK_OK(store_list_add(u, &e) == POSGATE_ERR_REJECTED ? POSGATE_OK : POSGATE_ERR_IO);
            CHECK(strstr(store_errmsg(s), "already present") != NULL);
            store_update_abort(u);
            CHECK_OK(store_begin_update(s, &u));
            CHECK_OK(store_list_delta_begin(u, "a", seq));
            memset(&e, 0, sizeof(e));
            model_entry(&e, removed, 1);
            e.valid_from = 0;
            CHECK_ERR(store_list_remove(u, &e), POSGATE_ERR_REJECTED);
            CHECK(strstr(store_errmsg(s), "removed but not present") != NULL);
            store_update_abort(u);
        }
        model_check(s, r, model, 100);
    }
    /* a snapshot of the list replaces entries and recent alike */
    CHECK_OK(store_recent_rows(s, &rows, &total));
    CHECK(rows > 0);
    CHECK_OK(install_snapshot(s, "a", seq + 1, 0, 10, "SPC-", NULL));
    CHECK_OK(store_recent_rows(s, &rows, &total));
    CHECK_INT(rows, 0);
    CHECK_INT(total, 10);
    CHECK(has_key(s, 3) && !has_key(s, 10));
    CHECK_OK(store_verify(s, NULL, NULL, msg, sizeof(msg)));
    /* nothing to merge: no write transaction, so another writer holding the lock (a sync in
     * another process) does not make it wait */
    {
        sqlite3 *other = NULL;
        uint64_t t0 = plat_mono_ns();

        CHECK_INT(sqlite3_open(p, &other), SQLITE_OK);
        CHECK_INT(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
        more = true;
        CHECK_OK(store_merge_step(s, 16, &moved, &more));
        CHECK(moved == 0 && !more);
        CHECK(plat_mono_ns() - t0 < 2000000000ull);
        sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(other);
    }
    store_reader_free(r);
    store_close(s);

    /* recent that does not match entries: verify and the merge say so, nothing is lost */
    {
        uint8_t key[16];
        struct feed_entry e;

        CHECK_OK(store_open(p, 0, &s, msg, sizeof(msg)));
        {
            uint64_t rm[] = {4};

            CHECK_OK(try_delta(s, seq + 1, rm, 1, NULL, 0, false, false));
        }
        store_close(s);
        make_entry(&e, 7, "SPC-");
        memcpy(key, e.key, 16);
        raw_exec(p, "INSERT INTO recent SELECT k, t, n, 0, a, f, u, s FROM entries WHERE k = ?1",
                 key);
        CHECK_OK(store_open(p, 0, &s, msg, sizeof(msg)));
        CHECK_ERR(store_verify(s, NULL, NULL, msg, sizeof(msg)), POSGATE_ERR_REJECTED);
        CHECK_ERR(store_merge_step(s, 16, &moved, &more), POSGATE_ERR_CORRUPT);
        CHECK(strstr(store_errmsg(s), "adds a row of entries that exists") != NULL);
        CHECK_OK(store_recent_rows(s, &rows, &total));
        CHECK_INT(rows, 2); /* the marker of 4 and the bad addition: the step rolled back */
        CHECK(!has_key(s, 4));
        store_close(s);
        raw_exec(p, "DELETE FROM recent WHERE k = ?1", key);
        raw_exec(p, "DELETE FROM entries WHERE k = ?1", key);
        CHECK_OK(store_open(p, 0, &s, msg, sizeof(msg)));
        /* 7 is gone from entries: a marker naming it would dangle */
        store_close(s);
        make_entry(&e, 5, "SPC-");
        memcpy(key, e.key, 16);
        raw_exec(p, "INSERT INTO recent SELECT k, t, n, 1, a, f, u, s FROM entries WHERE k = ?1",
                 key);
        raw_exec(p, "DELETE FROM entries WHERE k = ?1", key);
        CHECK_OK(store_open(p, 0, &s, msg, sizeof(msg)));
        msg[0] = 0;
        CHECK_ERR(store_verify(s, NULL, NULL, msg, sizeof(msg)), POSGATE_ERR_CORRUPT);
        CHECK(strstr(msg, "removal marker") != NULL);
        CHECK_ERR(store_merge_step(s, 16, &moved, &more), POSGATE_ERR_CORRUPT);
        CHECK(strstr(store_errmsg(s), "is absent") != NULL);
        store_close(s);
    }
}

static void
test_migration_from_v1(void)
{
    char p[512], msg[STORE_ERRMSG_MAX];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    struct state_digest sd;
    uint8_t ser[STATE_DIGEST_SERIAL_LEN];
    char hex[STATE_DIGEST_HEX_LEN + 1];
    struct store *s = NULL;
    struct store_list l;

    path_in(p, sizeof(p), "v1.db");
    /* A store as schema version 1 wrote it: no lists.reasons. */
    CHECK_INT(sqlite3_open(p, &db), SQLITE_OK);
    CHECK_INT(
        sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL;"
                     "CREATE TABLE meta(name TEXT PRIMARY KEY NOT NULL, value) WITHOUT ROWID;"
                     "INSERT INTO meta VALUES('magic', 'posgate-store');"
                     "INSERT INTO meta VALUES('feed_version', 3);"
                     "CREATE TABLE lists(no INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
                     " seq INTEGER NOT NULL, entries INTEGER NOT NULL, digest TEXT NOT NULL,"
                     " state BLOB NOT NULL, issued_at INTEGER NOT NULL);"
                     "CREATE TABLE tmpl(id INTEGER PRIMARY KEY, list INTEGER NOT NULL,"
                     " stem BLOB NOT NULL, width INTEGER NOT NULL, UNIQUE(list, stem, width));"
                     "CREATE TABLE entries(k BLOB NOT NULL, t INTEGER NOT NULL,"
                     " n INTEGER NOT NULL, a INTEGER NOT NULL, f INTEGER NOT NULL, u INTEGER,"
                     " s BLOB, PRIMARY KEY(k, t, n)) WITHOUT ROWID;"
                     "INSERT INTO tmpl VALUES(1, 1, CAST('SPC-' AS BLOB), 6);"
                     "PRAGMA user_version = 1;",
                     NULL, NULL, NULL),
        SQLITE_OK);
    state_digest_init(&sd);
    CHECK_INT(sqlite3_prepare_v2(db, "INSERT INTO entries VALUES(?1, 1, ?2, ?3, ?4, ?5, NULL)", -1,
                                 &st, NULL),
              SQLITE_OK);
    for (unsigned i = 0; i < 20; i++) {
        struct feed_entry e;

        make_entry(&e, i * 5 + 1, "SPC-"); /* no scope narrowing for these seeds */
        e.reason = (uint16_t)(i % 2 == 0 ? 1 : 9);
        state_digest_add(&sd, &e);
        sqlite3_bind_blob(st, 1, e.key, 16, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (int64_t)((i * 5 + 1) % 1000000));
        sqlite3_bind_int64(st, 3, e.kind | (e.id_type << 1) | (e.reason << 5));
        sqlite3_bind_int64(st, 4, e.valid_from);
        if (e.valid_until == FEED_UNTIL_OPEN) {
            sqlite3_bind_null(st, 5);
        } else {
            sqlite3_bind_int64(st, 5, e.valid_until);
        }
        CHECK_INT(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    state_digest_serialise(&sd, ser);
    state_digest_hex(&sd, hex);
    CHECK_INT(sqlite3_prepare_v2(db, "INSERT INTO lists VALUES(1, 'a', 4, 20, ?1, ?2, 1700000000)",
                                 -1, &st, NULL),
              SQLITE_OK);
    sqlite3_bind_text(st, 1, hex, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, ser, sizeof(ser), SQLITE_STATIC);
    CHECK_INT(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);

    /* Read-only cannot migrate. */
    CHECK_ERR(store_open(p, STORE_READONLY, &s, msg, sizeof(msg)), POSGATE_ERR_STATE);
    CHECK_CONTAINS(msg, "needs migration");
    CHECK_OK(store_open(p, 0, &s, msg, sizeof(msg)));
    if (s == NULL) {
        fprintf(stderr, "migration: %s\n", msg);
        return;
    }
    CHECK_OK(store_get_list(s, "a", &l));
    CHECK_INT(l.seq, 4);
    CHECK_INT(l.entries, 20);
    CHECK_INT(l.reasons[0], 0x02); /* reason 1 */
    CHECK_INT(l.reasons[1], 0x02); /* reason 9 */
    CHECK_OK(store_verify(s, NULL, NULL, msg, sizeof(msg)));
    {
        struct store_meta m;

        CHECK_OK(store_get_meta(s, &m));
        CHECK_INT(m.feed_version, 3);
    }
    store_close(s);
    CHECK_INT(sqlite3_open(p, &db), SQLITE_OK);
    CHECK_INT(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    CHECK_INT(sqlite3_step(st), SQLITE_ROW);
    CHECK_INT(sqlite3_column_int(st, 0), STORE_SCHEMA_VERSION);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void
write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");

    CHECK(f != NULL);
    if (f != NULL) {
        CHECK_INT(fwrite(p, 1, n, f), n);
        fclose(f);
    }
}

static void
test_corrupt_files(void)
{
    char p[512], msg[STORE_ERRMSG_MAX];
    struct store *s = NULL;
    uint8_t junk[16384];
    sqlite3 *db = NULL;

    for (size_t i = 0; i < sizeof(junk); i++) {
        junk[i] = (uint8_t)mix(i);
    }
    path_in(p, sizeof(p), "junk.db");
    write_bytes(p, junk, sizeof(junk));
    CHECK_ERR(store_open(p, 0, &s, msg, sizeof(msg)), POSGATE_ERR_CORRUPT);
    CHECK(s == NULL);
    CHECK(strstr(msg, "junk.db: file is not a database (expected a posgate store)") != NULL);

    path_in(p, sizeof(p), "foreign.db");
    CHECK_INT(sqlite3_open(p, &db), SQLITE_OK);
    CHECK_INT(sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES(1);", NULL, NULL, NULL),
              SQLITE_OK);
    sqlite3_close(db);
    CHECK_ERR(store_open(p, STORE_CREATE, &s, msg, sizeof(msg)), POSGATE_ERR_CORRUPT);
    CHECK_CONTAINS(msg, "not a posgate store");

    path_in(p, sizeof(p), "magic.db");
    CHECK_INT(sqlite3_open(p, &db), SQLITE_OK);
    CHECK_INT(sqlite3_exec(db,
                           "CREATE TABLE meta(name TEXT PRIMARY KEY, value);"
                           "INSERT INTO meta VALUES('magic', 'other');PRAGMA user_version=1;",
                           NULL, NULL, NULL),
              SQLITE_OK);
    sqlite3_close(db);
    CHECK_ERR(store_open(p, 0, &s, msg, sizeof(msg)), POSGATE_ERR_CORRUPT);
    CHECK_CONTAINS(msg, "magic");

    path_in(p, sizeof(p), "future.db");
    CHECK_OK(store_open(p, STORE_CREATE, &s, msg, sizeof(msg)));
    store_close(s);
    s = NULL;
    CHECK_INT(sqlite3_open(p, &db), SQLITE_OK);
    CHECK_INT(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    CHECK_ERR(store_open(p, 0, &s, msg, sizeof(msg)), POSGATE_ERR_CORRUPT);
    CHECK_CONTAINS(msg, "newer");
    CHECK_CONTAINS(msg, "future.db: schema version 99"); /* every refusal names the file once */
    CHECK(strstr(strstr(msg, "future.db") + 1, "future.db") == NULL);

    /* A real store with its pages overwritten in the middle. */
    path_in(p, sizeof(p), "damaged.db");
    CHECK_OK(store_open(p, STORE_CREATE, &s, msg, sizeof(msg)));
    if (s != NULL) {
        CHECK_OK(install_snapshot(s, "a", 1, 0, 3000, "SPC-", NULL));
        store_close(s);
        s = NULL;
        {
            FILE *f = fopen(p, "r+b");

            CHECK(f != NULL);
            if (f != NULL) {
                fseek(f, 4096 * 5, SEEK_SET);
                fwrite(junk, 1, 4096 * 4, f);
                fclose(f);
            }
        }
        if (store_open(p, 0, &s, msg, sizeof(msg)) == POSGATE_OK) {
            CHECK_ERR(store_verify(s, NULL, NULL, msg, sizeof(msg)), POSGATE_ERR_CORRUPT);
            store_close(s);
        } else {
            CHECK(strlen(msg) > 0);
        }
    }
}

/* The renewal period measured on the caller's clock readings (store_reader_refresh_at): another
 * process's update is seen once renew_ms have passed, and a reading older than the renewal the
 * reader recorded (a thread that read the clock before it took the reader) is no time elapsed,
 * not a wrap-around that renews every check. */
static void
test_renewal_clock(void)
{
    struct store *s = NULL;
    struct store_reader *r = NULL;
    char p[512], msg[STORE_ERRMSG_MAX];
    const uint64_t t0 = UINT64_C(10000000000); /* 10 s */
    uint64_t gen;

    path_in(p, sizeof(p), "renew.db");
    CHECK_OK(store_open(p, STORE_CREATE, &s, msg, sizeof(msg)));
    if (s == NULL) {
        return;
    }
    CHECK_OK(install_snapshot(s, "a", 1, 0, 10, "SPC-", NULL));
    CHECK_OK(store_reader_new(s, &r));
    store_reader_set_renew_ms(r, 1000);
    CHECK_ERR(store_reader_refresh_at(NULL, t0), POSGATE_ERR_INVALID);
    CHECK_OK(store_reader_refresh_at(r, t0));
    gen = store_reader_generation(r);
    /* a write by another connection, as another process's update would be */
    raw_exec(p, "INSERT INTO meta(name, value) VALUES ('renewal_test', 1)", NULL);
    CHECK_OK(store_reader_refresh_at(r, t0 - 1000));
    CHECK_INT(store_reader_generation(r), gen);
    CHECK_OK(store_reader_refresh_at(r, t0 + UINT64_C(999000000)));
    CHECK_INT(store_reader_generation(r), gen);
    CHECK_OK(store_reader_refresh_at(r, t0 + UINT64_C(1000000000)));
    CHECK(store_reader_generation(r) != gen);
    store_reader_free(r);
    store_close(s);
}

/* ---------------------------------------------------------------- key filter */

/* Lookups of seeds lo..hi-1 ("SPC-" entries) through r: how many are found. Every other one
 * is announced first (store_reader_prefetch), as a check does: the hint changes no answer, with
 * the filter or without it. */
static unsigned
found_through(struct store_reader *r, uint64_t lo, uint64_t hi)
{
    unsigned found = 0;

    for (uint64_t i = lo; i < hi; i++) {
        struct store_hit h[2];
        struct feed_entry e;
        size_t n = 0;

        make_entry(&e, i, "SPC-");
        if (i % 2 == 0) {
            store_reader_prefetch(r, e.key);
        }
        CHECK_OK(store_lookup(r, e.key, h, 2, &n));
        found += n > 0;
    }
    return found;
}

static enum store_filter_state
filter_state(struct store *s, uint64_t *keys)
{
    enum store_filter_state fs = STORE_FILTER_DAMAGED;

    CHECK_OK(store_filter_check(s, &fs, keys));
    return fs;
}

/* One bit of seed's block in the filter file fp lost on disk (a flipped sector), so that the
 * filter alone would miss that listed key. */
static void
lose_filter_bit(const char *fp, uint64_t seed)
{
    struct feed_entry e;
    struct keyfilter_map bm;
    uint64_t h, off;
    char msg[256];

    CHECK_OK(keyfilter_map_open(&bm, fp, msg, sizeof(msg)));
    make_entry(&e, seed, "SPC-");
    off = keyfilter_block_offset(bm.n_blocks, e.key, &h) + ((h & 511u) >> 3);
    keyfilter_map_close(&bm);
    test_flip_bit(fp, (long)off, (unsigned)(h & 7u));
    CHECK_OK(keyfilter_map_open(&bm, fp, msg, sizeof(msg)));
    CHECK(!keyfilter_maybe(&bm, e.key));
    keyfilter_map_close(&bm);
}

/* A new reader: whether it uses the filter, and that it finds exactly seeds lo..hi-1 of the
 * range lo - 500 .. hi + 500. */
static bool
fresh_reader_uses_filter(struct store *s, uint64_t lo, uint64_t hi)
{
    struct store_reader *r = NULL;
    bool uses;

    CHECK_OK(store_reader_new(s, &r));
    CHECK_OK(store_reader_refresh(r));
    uses = store_reader_uses_filter(r);
    CHECK_INT(found_through(r, lo, hi), hi - lo);
    CHECK_INT(found_through(r, lo > 500 ? lo - 500 : 0, lo), 0);
    CHECK_INT(found_through(r, hi, hi + 500), 0);
    store_reader_free(r);
    return uses;
}

static void
put_file_bytes(const char *path, long off, const void *p, size_t n)
{
    FILE *f = fopen(path, "r+b");

    CHECK(f != NULL);
    if (f != NULL) {
        CHECK(fseek(f, off, SEEK_SET) == 0);
        CHECK(fwrite(p, 1, n, f) == n);
        fclose(f);
    }
}

static void
test_key_filter(void)
{
    struct store *s = NULL;
    struct store_reader *held = NULL;
    char p[512], fp[600], msg[STORE_ERRMSG_MAX];
    uint64_t keys = 0, moved = 0;
    struct keyfilter_map m;
    unsigned passed = 0;
    uint64_t size = 0;

    path_in(p, sizeof(p), "filter.db");
    snprintf(fp, sizeof(fp), "%s%s", p, KEYFILTER_SUFFIX);
    CHECK_OK(store_open(p, STORE_CREATE, &s, msg, sizeof(msg)));
    if (s == NULL) {
        return;
    }
    CHECK_INT(filter_state(s, NULL), STORE_FILTER_MISSING);

    /* the first snapshot writes a new filter with the store's new version */
    CHECK_OK(install_snapshot(s, "a", 1, 0, 2000, "SPC-", NULL));
    CHECK_INT(filter_state(s, &keys), STORE_FILTER_OK);
    CHECK_INT(keys, 2000);
    CHECK(fresh_reader_uses_filter(s, 0, 2000));
    /* its "no" for absent keys: at 16+ bits a key, far more than 95 in 100 */
    CHECK_OK(keyfilter_map_open(&m, fp, msg, sizeof(msg)));
    for (uint64_t i = 0; i < 2000; i++) {
        struct feed_entry e;

        make_entry(&e, i, "SPC-");
        CHECK(keyfilter_maybe(&m, e.key));
        make_entry(&e, 1000000 + i, "SPC-");
        passed += keyfilter_maybe(&m, e.key);
    }
    keyfilter_map_close(&m);
    CHECK(passed < 100);

    /* a reader on that version; another list goes into the same file in place */
    CHECK_OK(store_reader_new(s, &held));
    CHECK_OK(store_reader_refresh(held));
    CHECK(store_reader_uses_filter(held));
    CHECK_OK(install_snapshot(s, "b", 1, 5000, 500, "SPC-", NULL));
    CHECK_INT(filter_state(s, &keys), STORE_FILTER_OK);
    CHECK_INT(keys, 2500);
    CHECK_INT(found_through(held, 5000, 5500), 500); /* renewed to the new version */
    CHECK(store_reader_uses_filter(held));
    CHECK_INT(found_through(held, 0, 2000), 2000);
    CHECK_OK(store_verify(s, NULL, NULL, msg, sizeof(msg)));

    /* a file whose token is not the store's (a crash before it was written): not used, the
     * answers come from the store, and a rebuild makes a filter for the version again */
    {
        uint8_t other[KEYFILTER_TOKEN_LEN];

        memset(other, 0x5a, sizeof(other));
        put_file_bytes(fp, 32, other, sizeof(other));
    }
    CHECK_INT(filter_state(s, NULL), STORE_FILTER_STALE);
    CHECK(!fresh_reader_uses_filter(s, 0, 2000));
    CHECK_OK(store_verify(s, NULL, NULL, msg, sizeof(msg)));
    CHECK_OK(store_filter_rebuild(s, &keys));
    CHECK_INT(keys, 2500);
    CHECK_INT(filter_state(s, NULL), STORE_FILTER_OK);
    CHECK(fresh_reader_uses_filter(s, 5000, 5500));

    /* no file while a delta adds keys: that version has no filter (SQLite answers) until the
     * rebuild that posgate import, sync, compact and the daemon run after an update */
    CHECK_OK(plat_unlink(fp));
    {
        uint64_t add[] = {2000, 2001, 2002};

        CHECK_OK(try_delta(s, 1, NULL, 0, add, 3, false, false));
    }
    CHECK_INT(filter_state(s, NULL), STORE_FILTER_MISSING);
    CHECK(!fresh_reader_uses_filter(s, 0, 2003));
    CHECK_OK(store_filter_rebuild(s, NULL));
    CHECK(fresh_reader_uses_filter(s, 0, 2003));
    /* a delta then adds in place, and a held reader moves on with the filter */
    {
        uint64_t add[] = {2003, 2004};
        uint64_t rm[] = {0};

        CHECK_OK(try_delta(s, 2, rm, 1, add, 2, false, false));
    }
    CHECK_INT(filter_state(s, NULL), STORE_FILTER_OK);
    CHECK(fresh_reader_uses_filter(s, 1, 2005));
    CHECK_INT(found_through(held, 2003, 2005), 2);
    CHECK(store_reader_uses_filter(held));

    /* a file that is not a filter */
    CHECK_OK(plat_write_atomic(fp, "not a filter", 12, 0644));
    CHECK_INT(filter_state(s, NULL), STORE_FILTER_DAMAGED);
    CHECK(!fresh_reader_uses_filter(s, 1, 2005));
    CHECK_OK(store_filter_rebuild(s, NULL));
    CHECK_INT(filter_state(s, NULL), STORE_FILTER_OK);

    /* a filter with the right token and a checksum that matches, but without the keys (a
     * filter written wrong): it would answer "in no row" for listed keys. A reader's spot check
     * of a few keys refuses it (the answers come from the store), the state is damaged, and
     * verify says so */
    {
        uint8_t token[KEYFILTER_TOKEN_LEN];
        struct keyfilter_writer w;
        FILE *f = fopen(fp, "rb");

        CHECK(f != NULL && fseek(f, 32, SEEK_SET) == 0 && fread(token, 1, sizeof(token), f) == 16);
        if (f != NULL) {
            fclose(f);
        }
        CHECK_OK(keyfilter_create(&w, fp, 2005, msg, sizeof(msg)));
        CHECK_OK(keyfilter_install(&w, token, msg, sizeof(msg)));
        keyfilter_close(&w);
    }
    CHECK_ERR(store_verify(s, NULL, NULL, msg, sizeof(msg)), POSGATE_ERR_CORRUPT);
    CHECK_CONTAINS(msg, "lacks");
    CHECK_INT(filter_state(s, NULL), STORE_FILTER_DAMAGED);
    CHECK(!fresh_reader_uses_filter(s, 1, 2005));
    CHECK_OK(store_filter_rebuild(s, NULL));
    CHECK_OK(store_verify(s, NULL, NULL, msg, sizeof(msg)));
    CHECK(fresh_reader_uses_filter(s, 1, 2005));

    /* one bit of a listed key's block lost on disk (a flipped sector): the spot checks of a
     * few keys would most likely pass, the checksum of the blocks does not. Not used, damaged,
     * verify says so (unit/keyfilter: an update does not add to it, which would seal the loss) */
    lose_filter_bit(fp, 1000);
    /* this handle's readers took the filter for this version before the loss (its blocks are
     * read once a version for the process, keyfilter.h); once the handle's own verify has found
     * the loss, its next reader does not take that verdict: it finds seed 1000 */
    CHECK_ERR(store_verify(s, NULL, NULL, msg, sizeof(msg)), POSGATE_ERR_CORRUPT);
    CHECK_CONTAINS(msg, "checksum");
    CHECK(!fresh_reader_uses_filter(s, 1, 2005));
    CHECK_INT(filter_state(s, NULL), STORE_FILTER_DAMAGED);
    CHECK_OK(store_filter_rebuild(s, NULL));
    CHECK_OK(store_verify(s, NULL, NULL, msg, sizeof(msg)));
    CHECK(fresh_reader_uses_filter(s, 1, 2005));
    /* ... and the same when the state check (status, the daemon's merge) finds it */
    lose_filter_bit(fp, 1000);
    CHECK_INT(filter_state(s, NULL), STORE_FILTER_DAMAGED);
    CHECK(!fresh_reader_uses_filter(s, 1, 2005));
    CHECK_OK(store_filter_rebuild(s, NULL));
    CHECK(fresh_reader_uses_filter(s, 1, 2005));

    /* a filter filled in place past its size is due for a rebuild, which makes a larger one */
    CHECK_OK(install_snapshot(s, "b", 2, 10000, 6000, "SPC-", NULL));
    CHECK_INT(filter_state(s, &keys), STORE_FILTER_FULL);
    CHECK(keys > 6000);
    CHECK(fresh_reader_uses_filter(s, 10000, 16000)); /* still correct, only less selective */
    CHECK_OK(store_filter_rebuild(s, &keys));
    CHECK_INT(filter_state(s, NULL), STORE_FILTER_OK);
    CHECK_INT(keys, 2000 + 6000 + 5); /* every row of entries (0 too, hidden by its removal
                                       * marker) and the five additions in recent */
    {
        uint64_t bigger = 0;

        CHECK_OK(plat_file_size(fp, &bigger));
        CHECK(bigger > size);
    }
    /* a merge leaves the version, and so the filter, as it is */
    {
        bool more = true;

        while (more) {
            CHECK_OK(store_merge_step(s, 64, &moved, &more));
        }
    }
    CHECK_INT(filter_state(s, NULL), STORE_FILTER_OK);
    store_reader_free(held);
    store_close(s);

    /* sizing: a store told to expect a million keys gets a filter for them at once */
    path_in(p, sizeof(p), "filter2.db");
    snprintf(fp, sizeof(fp), "%s%s", p, KEYFILTER_SUFFIX);
    CHECK_OK(store_open(p, STORE_CREATE, &s, msg, sizeof(msg)));
    if (s != NULL) {
        struct store_update *u = NULL;
        struct feed_entry e;
        struct state_digest st;

        state_digest_init(&st);
        CHECK_OK(store_begin_update(s, &u));
        store_update_expect_keys(u, 1000000);
        CHECK_OK(store_update_set_config(u, config_json, strlen(config_json)));
        CHECK_OK(store_list_snapshot_begin(u, "a", 0));
        make_entry(&e, 1, "SPC-");
        state_digest_add(&st, &e);
        CHECK_OK(store_list_add(u, &e));
        CHECK_OK(store_list_finish(u, 1, 1700000000, &st));
        CHECK_OK(store_update_commit(u));
        CHECK_OK(plat_file_size(fp, &size));
        CHECK_INT(size, KEYFILTER_HEADER + keyfilter_blocks_for(1000000) * KEYFILTER_BLOCK);
        CHECK(keyfilter_blocks_for(1000000) * KEYFILTER_BLOCK * 8 >= 10000000ull);
        CHECK(fresh_reader_uses_filter(s, 1, 2));
        store_close(s);
    }
}

int
main(void)
{
    if (!test_mkdtemp(tmpdir, sizeof(tmpdir), "store")) {
        return 1;
    }
    test_safety();
    test_roundtrip();
    test_snapshot_batches();
    test_sorted_runs();
    test_sorted_runs_damaged();
    test_deltas();
    test_visibility();
    test_verify_detects_edits();
    test_secure_delete();
    test_recent_model();
    test_migration_from_v1();
    test_corrupt_files();
    test_renewal_clock();
    test_key_filter();
    {
        char cmd[400];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (test_failures == 0 && system(cmd) != 0) {
            fprintf(stderr, "could not remove %s\n", tmpdir);
        }
    }
    return test_summary("store");
}
