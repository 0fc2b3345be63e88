/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Allocation-failure sweep: every parser a kiosk or publisher feeds untrusted bytes to, and the
 * decision path, run with plat_mem_fail_after(n) for n = 0, 1, 2 ... until the operation
 * succeeds. Each failing run must return an error (NOMEM, or another clean error code when a
 * library reports the failure as something else: counted and printed), never crash, and free
 * what it took (the ASan build and valgrind check the leaks); the run that finally succeeds
 * must give the same result as an unconstrained one. The inputs come from a small real feed
 * built with the real binaries (POSGATE_BIN): feed.json, the TUF metadata, a list snapshot,
 * the bundle, entries.csv rows, and an installed kiosk store for posgate_check.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "bundle.h"
#include "engine.h"
#include "entries_csv.h"
#include "ident.h"
#include "json_canon.h"
#include "plat_file.h"
#include "plat_mem.h"
#include "posgate.h"
#include "tuf_meta.h"
#undef FEED_SCOPE_MAX
#include "feed_config.h"
#include "test.h"

#define SWEEP_MAX 200000L
#define FILE_MAX  (16u << 20)

/* One operation under test: returns OK and a result value (compared with the unconstrained
 * run), or an error. Frees everything it allocated either way. */
typedef enum posgate_err (*sweep_fn)(void *ctx, long *result);

struct fixture {
    char dir[256];
    struct buf config;    /* feed.json */
    struct buf root;      /* metadata/1.root.json */
    struct buf timestamp; /* metadata/timestamp.json */
    struct buf targets;   /* metadata/1.targets.json */
    struct buf snapshot;  /* one list snapshot body */
    struct buf bundle;    /* the bundle file */
    struct buf csv;       /* the first rows of entries.csv */
    struct feed_config *cfg;
    char listed_id[128];
    char listed_service[64];
};

/* strict: every failing run must say NOMEM (the parsers and the engine); otherwise another
 * clean error is allowed and printed (posgate_open also opens the audit queue and device key,
 * whose failures are reported under their own codes). */
static void
sweep(const char *name, sweep_fn fn, void *ctx, int strict)
{
    long base = -1, got = -1, n, other = 0;
    enum posgate_err err;
    unsigned seen = 0; /* bitmap of the error codes other than NOMEM */
    char names[256] = "";

    plat_mem_fail_after(-1);
    err = fn(ctx, &base);
    if (err != POSGATE_OK) {
        fprintf(stderr, "%s: the unconstrained run failed: %s\n", name, posgate_err_name(err));
        CHECK_OK(err);
        return;
    }
    for (n = 0; n < SWEEP_MAX; n++) {
        plat_mem_fail_after(n);
        err = fn(ctx, &got);
        plat_mem_fail_after(-1);
        if (err == POSGATE_OK) {
            break;
        }
        if (err != POSGATE_ERR_NOMEM) {
            other++;
            if ((unsigned)err < 32 && (seen & (1u << (unsigned)err)) == 0) {
                size_t l = strlen(names);

                seen |= 1u << (unsigned)err;
                snprintf(names + l, sizeof(names) - l, " %s", posgate_err_name(err));
            }
        }
    }
    CHECK(n < SWEEP_MAX);
    CHECK_INT(got, base);
    if (strict) {
        CHECK_INT(other, 0); /* running out of memory is reported as NOMEM, not as bad input */
    }
    printf("%-24s %4ld failing allocation points, %ld reported as another error than NOMEM%s%s\n",
           name, n, other, other > 0 ? ":" : "", names);
}

/* ---- the operations ---- */

static enum posgate_err
op_ident(void *ctx, long *result)
{
    static const char *const ids[] = {"cn_rid:11010519491231002X", "passport:CHN:E12345678",
                                      "national_id:DE:T22000129", "cn_uscc:91350100M000100Y43",
                                      "name_dob:Li Lei|1990-02-03"};
    struct ident id;
    char em[256];
    enum posgate_err err;
    long ok = 0;

    (void)ctx;
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        err = ident_parse_arg(ids[i], strlen(ids[i]), &id, em, sizeof(em));
        if (err == POSGATE_ERR_NOMEM) {
            return err;
        }
        ok += err == POSGATE_OK;
    }
    *result = ok;
    return POSGATE_OK;
}

static enum posgate_err
op_json(void *ctx, long *result)
{
    struct fixture *fx = ctx;
    cJSON *v = NULL;
    char msg[256];
    enum posgate_err err;

    err = json_parse_bounded(fx->config.data, fx->config.len, FILE_MAX, &v, msg, sizeof(msg));
    if (err == POSGATE_OK) {
        *result = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(v, "lists"));
        if (v == NULL) {
            err = POSGATE_ERR_STATE;
        }
    } else if (v != NULL) {
        err = POSGATE_ERR_STATE; /* a failure must not hand out a tree */
    }
    cJSON_Delete(v);
    return err;
}

static enum posgate_err
op_feed_config(void *ctx, long *result)
{
    struct fixture *fx = ctx;
    struct feed_config *cfg = NULL;
    char msg[FEED_ERRMSG_MIN];
    enum posgate_err err;

    err = feed_config_parse(fx->config.data, fx->config.len, FEED_CONFIG_STRICT, &cfg, msg,
                            sizeof(msg));
    if (err == POSGATE_OK) {
        *result = (long)(cfg->n_lists * 1000 + cfg->n_reasons * 10 + cfg->n_services);
    } else if (cfg != NULL) {
        err = POSGATE_ERR_STATE;
    }
    feed_config_free(cfg);
    return err;
}

static enum posgate_err
meta_parse(const struct buf *b, enum tuf_role_type t, long *result)
{
    struct tuf_meta *m = NULL;
    char msg[TUF_ERRMSG_MAX];
    enum posgate_err err;

    err = tuf_meta_parse(b->data, b->len, t, &m, msg, sizeof(msg));
    if (err == POSGATE_OK) {
        *result = (long)(m->version * 100000 + (int64_t)m->nkeys * 1000 + (int64_t)m->ntargets);
    } else if (m != NULL) {
        err = POSGATE_ERR_STATE;
    }
    tuf_meta_free(m);
    return err;
}

static enum posgate_err
op_tuf_root(void *ctx, long *result)
{
    return meta_parse(&((struct fixture *)ctx)->root, TUF_ROLE_ROOT, result);
}

static enum posgate_err
op_tuf_timestamp(void *ctx, long *result)
{
    return meta_parse(&((struct fixture *)ctx)->timestamp, TUF_ROLE_TIMESTAMP, result);
}

static enum posgate_err
op_tuf_targets(void *ctx, long *result)
{
    return meta_parse(&((struct fixture *)ctx)->targets, TUF_ROLE_TARGETS, result);
}

static enum posgate_err
op_feed_reader(void *ctx, long *result)
{
    struct fixture *fx = ctx;
    struct feed_source src;
    struct feed_mem m;
    struct feed_reader *r = NULL;
    const struct feed_header *h;
    enum feed_item item;
    struct feed_entry e;
    enum posgate_err err;
    long n = 0;

    feed_source_mem(&src, &m, fx->snapshot.data, fx->snapshot.len);
    err = feed_reader_new(&src, FEED_READ_VERIFY_DIGEST, &r);
    if (err == POSGATE_OK) {
        err = feed_reader_header(r, &h);
    }
    while (err == POSGATE_OK) {
        err = feed_reader_next(r, &item, &e);
        if (err != POSGATE_OK || item == FEED_ITEM_END) {
            break;
        }
        n++;
    }
    feed_reader_free(r);
    *result = n;
    return err;
}

static enum posgate_err
op_bundle(void *ctx, long *result)
{
    struct fixture *fx = ctx;
    struct bundle *b = NULL;
    char msg[BUNDLE_ERRMSG_MAX];
    enum posgate_err err;
    long total = 0;

    err = bundle_open_mem(fx->bundle.data, fx->bundle.len, &b, msg, sizeof(msg));
    if (err == POSGATE_OK) {
        for (size_t i = 0; i < bundle_count(b); i++) {
            total += (long)bundle_entry_at(b, i)->length;
        }
        *result = total + (long)bundle_count(b);
    } else if (b != NULL) {
        err = POSGATE_ERR_STATE;
    }
    bundle_free(b);
    return err;
}

static enum posgate_err
op_entries_csv(void *ctx, long *result)
{
    struct fixture *fx = ctx;
    struct entries_csv *r = NULL;
    struct entries_row row;
    char msg[ENTRIES_CSV_ERRMSG_MAX];
    enum posgate_err err;
    long n = 0;
    FILE *f = fmemopen(fx->csv.data, fx->csv.len, "rb");

    if (f == NULL) {
        return POSGATE_ERR_IO;
    }
    err = entries_csv_open(f, "entries.csv", fx->cfg, &r, msg, sizeof(msg));
    while (err == POSGATE_OK && (err = entries_csv_next(r, &row)) == POSGATE_OK) {
        n++;
    }
    if (err == POSGATE_ERR_NOTFOUND) {
        err = POSGATE_OK;
    }
    entries_csv_free(r);
    fclose(f);
    *result = n;
    return err;
}

static enum posgate_err
op_engine(void *ctx, long *result)
{
    struct fixture *fx = ctx;
    struct engine_request rq;
    struct engine_list_state lists[FEED_LISTS_MAX];
    struct engine_id id;
    struct engine_hit hit;
    static const char jur[1][3] = {"CN"};
    static struct engine_result res;
    enum posgate_err err;

    memset(&rq, 0, sizeof(rq));
    memset(lists, 0, sizeof(lists));
    memset(&id, 0, sizeof(id));
    memset(&hit, 0, sizeof(hit));
    for (unsigned i = 0; i < fx->cfg->n_lists; i++) {
        lists[i].installed = true;
        lists[i].age_s = 60;
    }
    id.type = IDENT_CN_RID;
    id.birth_days = IDENT_NO_BIRTH;
    rq.cfg = fx->cfg;
    rq.service = fx->cfg->reasons[0].n_scope > 0
                     ? fx->cfg->services[fx->cfg->reasons[0].scope[0]].name
                     : fx->cfg->services[0].name;
    rq.at = rq.wall_now = 1900000000;
    rq.jurisdictions = jur;
    rq.n_jurisdictions = 1;
    rq.ids = &id;
    rq.n_ids = 1;
    rq.lists = lists;
    hit.id = 0;
    hit.list = 0;
    hit.e.reason = 0;
    hit.e.valid_from = 0;
    hit.e.valid_until = FEED_UNTIL_OPEN;
    err = engine_decide(&rq, &hit, 1, false, &res);
    *result = (long)res.decision * 100 + (long)res.n_reasons;
    return err;
}

static enum posgate_err
op_posgate_check(void *ctx, long *result)
{
    struct fixture *fx = ctx;
    struct posgate *pg = NULL;
    struct posgate_request *rq = NULL;
    struct posgate_result *res = NULL;
    char kiosk[300], *status = NULL;
    enum posgate_err err;

    snprintf(kiosk, sizeof(kiosk), "%s/kiosk", fx->dir);
    err = posgate_open(kiosk, &pg);
    if (err == POSGATE_OK) {
        err = posgate_request_new(&rq);
    }
    if (err == POSGATE_OK) {
        err = posgate_request_set_service(rq, fx->listed_service);
    }
    if (err == POSGATE_OK) {
        err = posgate_request_add_id(rq, fx->listed_id);
    }
    if (err == POSGATE_OK) {
        err = posgate_result_new(&res);
    }
    if (err == POSGATE_OK) {
        err = posgate_check(pg, rq, res);
    }
    if (err == POSGATE_OK && posgate_result_json(res) == NULL) {
        err = POSGATE_ERR_NOMEM;
    }
    if (err == POSGATE_OK) {
        err = posgate_status_json(pg, &status);
    }
    if (err == POSGATE_OK) {
        *result = (long)posgate_result_decision(res);
    }
    posgate_free(status);
    posgate_result_free(res);
    posgate_request_free(rq);
    posgate_close(pg);
    return err;
}

/* ---- the fixture: a small real feed and an installed kiosk ---- */

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
run(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (system(cmd) != 0) {
        fprintf(stderr, "fixture command failed: %s\n", cmd);
        return -1;
    }
    return 0;
}

static int
load(struct fixture *fx, const char *rel, struct buf *b)
{
    char p[512];

    snprintf(p, sizeof(p), "%s/%s", fx->dir, rel);
    if (plat_read_file(p, b) != POSGATE_OK) {
        fprintf(stderr, "cannot read %s\n", p);
        return -1;
    }
    return 0;
}

/* Finds the first file in dir whose name contains needle. */
static int
find_file(const char *dir, const char *needle, char *out, size_t cap)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int rc = -1;

    if (d == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (strstr(e->d_name, needle) != NULL) {
            rc = (size_t)snprintf(out, cap, "%s/%s", dir, e->d_name) < cap ? 0 : -1;
            break;
        }
    }
    closedir(d);
    return rc;
}

static int
fixture_setup(struct fixture *fx)
{
    const char *bin = getenv("POSGATE_BIN");
    char p[512], lists[300], sub[600], line[512];
    char msg[FEED_ERRMSG_MIN];
    FILE *f;
    DIR *d;
    struct dirent *e;
    size_t n = 0;

    if (bin == NULL) {
        fprintf(stderr, "POSGATE_BIN must be set (ctest sets it)\n");
        return -1;
    }
    snprintf(fx->dir, sizeof(fx->dir), "%s/posgate-alloc-XXXXXX",
             getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(fx->dir) == NULL) {
        return -1;
    }
    if (run("cd %s && %s/posgate-keygen --out root >/dev/null && "
            "%s/posgate-keygen --out feed >/dev/null && "
            "%s/posgate-keygen --list-key --out list.key >/dev/null && "
            "%s/posgate-synth --count 300 --seed 11 --out e.csv --config-out feed.json "
            "--subjects-out subj.csv >/dev/null && "
            "%s/posgate-publish init --state st --config feed.json --root-key root.key "
            "--threshold 1 --feed-key feed.key --list-key list.key >/dev/null && "
            "%s/posgate-publish update --state st --entries e.csv --out feed "
            ">/dev/null 2>&1 && "
            "%s/posgate-publish bundle --feed feed --out feed.bundle >/dev/null && "
            "%s/posgate --data-dir kiosk init --root feed/metadata/1.root.json "
            "--list-key list.key --jurisdiction CN >/dev/null && "
            "%s/posgate --data-dir kiosk import feed >/dev/null",
            fx->dir, bin, bin, bin, bin, bin, bin, bin, bin, bin) != 0) {
        return -1;
    }
    if (load(fx, "feed.json", &fx->config) || load(fx, "feed/metadata/1.root.json", &fx->root) ||
        load(fx, "feed/metadata/timestamp.json", &fx->timestamp) ||
        load(fx, "feed/metadata/1.targets.json", &fx->targets) ||
        load(fx, "feed.bundle", &fx->bundle)) {
        return -1;
    }
    /* one list's snapshot */
    snprintf(lists, sizeof(lists), "%s/feed/targets/lists", fx->dir);
    d = opendir(lists);
    if (d == NULL) {
        return -1;
    }
    p[0] = 0;
    while ((e = readdir(d)) != NULL && p[0] == 0) {
        if (e->d_name[0] != '.') {
            snprintf(sub, sizeof(sub), "%s/%s", lists, e->d_name);
            if (find_file(sub, ".snapshot-", p, sizeof(p)) != 0) {
                p[0] = 0;
            }
        }
    }
    closedir(d);
    if (p[0] == 0 || plat_read_file(p, &fx->snapshot) != POSGATE_OK) {
        fprintf(stderr, "no list snapshot under %s\n", lists);
        return -1;
    }
    /* the header and 40 rows of entries.csv */
    snprintf(p, sizeof(p), "%s/e.csv", fx->dir);
    f = fopen(p, "r");
    if (f == NULL) {
        return -1;
    }
    while (n < 41 && fgets(line, sizeof(line), f) != NULL) {
        if (buf_append(&fx->csv, line, strlen(line)) != POSGATE_OK) {
            break;
        }
        n++;
    }
    fclose(f);
    /* a listed subject: subj.csv rows are situation,id,service,... */
    snprintf(p, sizeof(p), "%s/subj.csv", fx->dir);
    f = fopen(p, "r");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char *c1, *c2;

        if (strncmp(line, "listed,", 7) != 0) {
            continue;
        }
        c1 = line + 7;
        c2 = strchr(c1, ',');
        if (c2 == NULL) {
            continue;
        }
        *c2++ = 0;
        c2[strcspn(c2, ",\n")] = 0;
        if ((size_t)snprintf(fx->listed_id, sizeof(fx->listed_id), "%s", c1) <
                sizeof(fx->listed_id) &&
            (size_t)snprintf(fx->listed_service, sizeof(fx->listed_service), "%s", c2) <
                sizeof(fx->listed_service)) {
            break;
        }
        fx->listed_id[0] = 0;
    }
    fclose(f);
    if (fx->listed_id[0] == 0 ||
        feed_config_parse(fx->config.data, fx->config.len, FEED_CONFIG_STRICT, &fx->cfg, msg,
                          sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "fixture: no listed subject or config: %s\n", msg);
        return -1;
    }
    return 0;
}

static void
fixture_free(struct fixture *fx)
{
    buf_free(&fx->config);
    buf_free(&fx->root);
    buf_free(&fx->timestamp);
    buf_free(&fx->targets);
    buf_free(&fx->snapshot);
    buf_free(&fx->bundle);
    buf_free(&fx->csv);
    feed_config_free(fx->cfg);
    if (fx->dir[0] != 0) {
        (void)run("rm -rf %s", fx->dir);
    }
}

int
main(void)
{
    struct fixture fx = {
        .config = BUF_INIT(FILE_MAX),
        .root = BUF_INIT(FILE_MAX),
        .timestamp = BUF_INIT(FILE_MAX),
        .targets = BUF_INIT(FILE_MAX),
        .snapshot = BUF_INIT(FILE_MAX),
        .bundle = BUF_INIT(FILE_MAX),
        .csv = BUF_INIT(FILE_MAX),
    };

    json_init_hooks();
    if (fixture_setup(&fx) != 0) {
        fixture_free(&fx);
        fprintf(stderr, "alloc_sweep: fixture setup failed\n");
        return 1;
    }
    sweep("ident_parse_arg", op_ident, &fx, 1);
    sweep("json_parse_bounded", op_json, &fx, 1);
    sweep("feed_config_parse", op_feed_config, &fx, 1);
    sweep("tuf_meta_parse root", op_tuf_root, &fx, 1);
    sweep("tuf_meta_parse timestamp", op_tuf_timestamp, &fx, 1);
    sweep("tuf_meta_parse targets", op_tuf_targets, &fx, 1);
    sweep("feed_reader snapshot", op_feed_reader, &fx, 1);
    sweep("bundle_open_mem", op_bundle, &fx, 1);
    sweep("entries_csv", op_entries_csv, &fx, 1);
    sweep("engine_decide", op_engine, &fx, 1);
    sweep("posgate_check", op_posgate_check, &fx, 0);
    fixture_free(&fx);
    return test_summary("alloc_sweep");
}
