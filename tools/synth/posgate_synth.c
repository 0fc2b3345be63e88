/* SPDX-License-Identifier: Apache-2.0 */
/*
 * posgate-synth: writes a synthetic entries.csv of any size for demos, tests and benchmarks,
 * deterministic from a seed (splitmix64, not the C library generator), streamed row by row so 15
 * million rows take no memory. Identifiers are valid with their check digits (ident_synth_*); rows
 * mix the lists and reasons of the feed config (the built-in sample, or --config), kinds,
 * identifier types, lapsed and future validity windows and scope narrowings, and an exempt row now
 * and then lifts the restriction of the subject listed just before it. --subjects-out names a few
 * subjects of each situation so a demo can check them.
 *
 * Validity windows are fixed calendar dates (lapsed windows end by 2020, future ones start in
 * 2090), so the output depends on the seed and the count only, and keeps its meaning for
 * decades. Exit codes: 0 ok, 2 usage, 5 I/O.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ident.h"
#include "plat_clock.h"
#include "plat_file.h"
#include "posgate_err.h"

#include "feed_config.h"
#include "version.h"

#define EXIT_OK           0
#define EXIT_USAGE        2
#define EXIT_IO           5
#define SUBJECTS_PER_KIND 3

static const char sample_config[] =
    "{\n"
    "  \"feed_id\": \"cn-transport-demo\",\n"
    "  \"services\": [\"air\", \"air.economy\", \"air.first\", \"rail\", \"rail.hsr\",\n"
    "               \"rail.hsr.first\", \"rail.regular\", \"hotel\", \"hotel.star\"],\n"
    "  \"lists\": [\n"
    "    {\"id\": \"spc-enforcement\", \"authority\": \"Supreme People's Court\",\n"
    "     \"jurisdictions\": [\"CN\"], \"stale_after\": \"7d\", \"stale_policy\": \"refer\"},\n"
    "    {\"id\": \"caac-safety\", \"authority\": \"Civil Aviation Administration of China\",\n"
    "     \"jurisdictions\": [\"CN\"], \"stale_after\": \"2d\", \"stale_policy\": \"deny\"},\n"
    "    {\"id\": \"rail-safety\", \"authority\": \"China State Railway Group\",\n"
    "     \"jurisdictions\": [], \"stale_after\": \"3d\", \"stale_policy\": \"allow\"}\n"
    "  ],\n"
    "  \"reasons\": [\n"
    "    {\"id\": \"court-enforcement\", \"authority\": \"Supreme People's Court\",\n"
    "     \"legal_basis\": \"Provisions on Restricting High Consumption of Judgment Debtors, "
    "art. 3\",\n"
    "     \"contest\": \"Apply to the enforcing court; https://zxgk.court.gov.cn / 12368\",\n"
    "     \"scope\": [\"air\", \"rail.hsr\", \"hotel.star\"], \"override\": \"none\", "
    "\"minors\": \"refer\"},\n"
    "    {\"id\": \"air-safety\", \"authority\": \"Civil Aviation Administration of China\",\n"
    "     \"legal_basis\": \"Civil Aviation Security Regulations, art. 9\",\n"
    "     \"contest\": \"Written objection to the CAAC within 30 days; +86 10 6409 1114\",\n"
    "     \"scope\": [\"air\"], \"override\": \"supervisor\", \"minors\": \"deny\"},\n"
    "    {\"id\": \"rail-disorder\", \"authority\": \"China State Railway Group\",\n"
    "     \"legal_basis\": \"Railway Safety Management Regulations, art. 77\",\n"
    "     \"contest\": \"Railway customer service 12306, ask for the restriction review desk\",\n"
    "     \"scope\": [\"rail\"], \"override\": \"supervisor\", \"minors\": \"refer\"}\n"
    "  ]\n"
    "}\n";

/* splitmix64: a small, well-mixed, seedable generator. */
static uint64_t
next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t
below(uint64_t *s, uint64_t n)
{
    return n == 0 ? 0 : next_u64(s) % n; /* bias is irrelevant for test data */
}

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: posgate-synth --count N --seed S --out entries.csv [--config-out feed.json]\n"
            "                     [--config feed.json] [--subjects-out FILE]\n"
            "Writes N synthetic rows with valid check digits, deterministic from S, for the\n"
            "lists and reasons of --config (default: a built-in sample config, which\n"
            "--config-out writes). --subjects-out writes a few subjects known to be listed,\n"
            "exempt, lapsed, not yet valid, narrowed in scope, name-only or never listed, as\n"
            "CSV: status,id,service,list,listing_id. Exit: 0 ok, 2 usage, 5 I/O.\n");
}

/* Writes s as one CSV field, quoted when it holds ',', '"', CR or LF. */
static void
csv_field(FILE *f, const char *s)
{
    const char *p;

    if (strpbrk(s, ",\"\r\n") == NULL) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (p = s; *p != '\0'; p++) {
        if (*p == '"') {
            fputc('"', f);
        }
        fputc(*p, f);
    }
    fputc('"', f);
}

static void
date_text(int64_t days, char out[16])
{
    char t[32];

    plat_time_format(days * 86400, t, sizeof t);
    memcpy(out, t, 10);
    out[10] = '\0';
}

enum situation {
    S_LISTED,   /* restricted now, whole reason scope, open-ended */
    S_EXEMPT,   /* restricted and exempted by the next row */
    S_LAPSED,   /* window ended before 2021 */
    S_FUTURE,   /* window starts in 2090 or later */
    S_NARROWED, /* scope narrowed to one service */
    S_NAME,     /* name_dob: can only ever lead to REFER */
    S_COUNT
};

static const char *const situation_names[S_COUNT] = {"listed", "exempt",   "lapsed",
                                                     "future", "narrowed", "name_only"};

struct subjects {
    FILE *f;
    unsigned have[S_COUNT];
};

static void
note_subject(struct subjects *sj, enum situation s, const char *type, const char *value,
             const char *service, const char *list, const char *listing)
{
    char id[160];

    if (sj->f == NULL || sj->have[s] >= SUBJECTS_PER_KIND) {
        return;
    }
    sj->have[s]++;
    snprintf(id, sizeof id, "%s:%s", type, value);
    fprintf(sj->f, "%s,", situation_names[s]);
    csv_field(sj->f, id);
    fprintf(sj->f, ",%s,%s,%s\n", service, list, listing);
}

/* A reason the list's own authority issued (a list and its reasons belong together: a DENY names
 * an authority for its list), one at random when it issued several; the reason of the same
 * position when none of the config's reasons is the list's authority's. */
static unsigned
reason_of_list(const struct feed_config *cfg, unsigned li, uint64_t *rng)
{
    unsigned n = 0, pick;

    for (unsigned r = 0; r < cfg->n_reasons; r++) {
        n += strcmp(cfg->reasons[r].authority, cfg->lists[li].authority) == 0;
    }
    if (n == 0) {
        return li % cfg->n_reasons;
    }
    pick = (unsigned)below(rng, n);
    for (unsigned r = 0; r < cfg->n_reasons; r++) {
        if (strcmp(cfg->reasons[r].authority, cfg->lists[li].authority) == 0 && pick-- == 0) {
            return r;
        }
    }
    return li % cfg->n_reasons;
}

/* A service inside the reason's scope: a scope service or one of its descendants. */
static unsigned
pick_within(const struct feed_config *cfg, const struct feed_reason *r, uint64_t *rng)
{
    unsigned cand[FEED_SERVICES_MAX];
    unsigned n = 0, i;

    for (i = 0; i < cfg->n_services; i++) {
        if (feed_config_service_within_any(cfg, i, r->scope, r->n_scope)) {
            cand[n++] = i;
        }
    }
    return n > 0 ? cand[below(rng, n)] : r->scope[0];
}

/* The identifier of a subject: type name and value. */
static void
make_ident(uint64_t v, unsigned pick, const char **type, char *value, size_t cap)
{
    char tmp[IDENT_SYNTH_MRZ_SIZE];

    if (pick < 60) {
        *type = "cn_rid";
        ident_synth_cn_rid(v, tmp);
    } else if (pick < 75) {
        *type = "passport";
        ident_synth_passport(v, tmp);
    } else if (pick < 85) {
        *type = "cn_uscc";
        ident_synth_cn_uscc(v, tmp);
    } else if (pick < 95) {
        *type = "national_id";
        ident_synth_national_id(v, tmp);
    } else {
        *type = "mrz";
        ident_synth_mrz(v, tmp);
    }
    snprintf(value, cap, "%s", tmp);
}

/* The command line. */
struct args {
    const char *count_s, *seed_s, *out, *config_out, *config_in, *subjects_out;
    uint64_t count, seed;
    int help; /* --help: usage printed, nothing else to do */
};

/* Fills a from argv: EXIT_OK to go on (or stop, when a->help), EXIT_USAGE refused (told). */
static int
parse_args(int argc, char **argv, struct args *a)
{
    char *end;
    int k;

    memset(a, 0, sizeof *a);
    for (k = 1; k < argc; k++) {
        const char **slot = NULL;

        if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
            usage(stdout);
            a->help = 1;
            return EXIT_OK;
        }
        if (strcmp(argv[k], "--count") == 0) {
            slot = &a->count_s;
        } else if (strcmp(argv[k], "--seed") == 0) {
            slot = &a->seed_s;
        } else if (strcmp(argv[k], "--out") == 0) {
            slot = &a->out;
        } else if (strcmp(argv[k], "--config-out") == 0) {
            slot = &a->config_out;
        } else if (strcmp(argv[k], "--config") == 0) {
            slot = &a->config_in;
        } else if (strcmp(argv[k], "--subjects-out") == 0) {
            slot = &a->subjects_out;
        } else {
            fprintf(stderr, "posgate-synth: unknown argument \"%s\"\n", argv[k]);
            usage(stderr);
            return EXIT_USAGE;
        }
        if (k + 1 >= argc) {
            fprintf(stderr, "posgate-synth: %s needs a value\n", argv[k]);
            return EXIT_USAGE;
        }
        *slot = argv[++k];
    }
    if (a->count_s == NULL || a->seed_s == NULL || a->out == NULL) {
        fprintf(stderr, "posgate-synth: --count, --seed and --out are required\n");
        usage(stderr);
        return EXIT_USAGE;
    }
    errno = 0;
    a->count = strtoull(a->count_s, &end, 10);
    if (errno != 0 || end == a->count_s || *end != '\0' || a->count_s[0] == '-') {
        fprintf(stderr, "posgate-synth: --count \"%s\": expected a whole number\n", a->count_s);
        return EXIT_USAGE;
    }
    errno = 0;
    a->seed = strtoull(a->seed_s, &end, 10);
    if (errno != 0 || end == a->seed_s || *end != '\0' || a->seed_s[0] == '-') {
        fprintf(stderr, "posgate-synth: --seed \"%s\": expected a whole number\n", a->seed_s);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* The feed config rows are drawn from (--config, or the built-in sample), parsed into *cfg, and
 * written to --config-out when given: EXIT_OK, EXIT_USAGE for a bad config, EXIT_IO. */
static int
read_config(const struct args *a, struct buf *raw, struct feed_config **cfg)
{
    char msg[512];
    enum posgate_err err;

    if (a->config_in != NULL) {
        err = plat_read_file(a->config_in, raw);
        if (err != POSGATE_OK) {
            fprintf(stderr, "posgate-synth: cannot read %s: %s\n", a->config_in,
                    posgate_strerror(err));
            return EXIT_IO;
        }
    } else {
        err = buf_append(raw, sample_config, sizeof sample_config - 1);
        if (err != POSGATE_OK) {
            return EXIT_IO;
        }
    }
    err = feed_config_parse(raw->data, raw->len, FEED_CONFIG_STRICT, cfg, msg, sizeof msg);
    if (err != POSGATE_OK || (*cfg)->n_lists == 0 || (*cfg)->n_reasons == 0) {
        fprintf(stderr, "posgate-synth: config: %s\n",
                err != POSGATE_OK ? msg : "needs at least one list and one reason");
        return EXIT_USAGE;
    }
    if (a->config_out != NULL) {
        err = plat_write_atomic(a->config_out, raw->data, raw->len, 0644);
        if (err != POSGATE_OK) {
            fprintf(stderr, "posgate-synth: cannot write %s: %s\n", a->config_out,
                    posgate_strerror(err));
            return EXIT_IO;
        }
    }
    return EXIT_OK;
}

/* A listed subject, noted once the next row shows it is not exempted. */
struct pending_subject {
    int set;
    char type[16], value[128], service[FEED_SERVICE_NAME_MAX + 1];
    char list[FEED_NAME_ID_MAX + 1], listing[48];
};

/* The generator between rows. */
struct gen {
    uint64_t rng;
    /* the subject of the last restrict row, for an exempt row after it */
    char last_type[16], last_value[128];
    unsigned last_list, last_reason;
    int have_last;
    struct pending_subject pend;
};

/* Writes row i (counting from 0) to f, and notes its subject in sj. */
static void
write_row(const struct feed_config *cfg, struct gen *g, uint64_t i, FILE *f, struct subjects *sj)
{
    uint64_t v = next_u64(&g->rng);
    unsigned roll = (unsigned)below(&g->rng, 1000);
    unsigned li, ri, svc;
    const struct feed_reason *r;
    const char *type, *kind = "restrict", *service;
    char value[128], listing[48], from[16], until[16], scope[80];
    enum situation sit;
    int64_t d_from, d_until = -1;

    if (roll < 15 && g->have_last) {
        /* an exemption of the subject listed just before, same list and reason */
        sit = S_EXEMPT;
        li = g->last_list;
        ri = g->last_reason;
        type = g->last_type;
        snprintf(value, sizeof value, "%s", g->last_value);
        kind = "exempt";
        g->have_last = 0;
    } else {
        li = (unsigned)below(&g->rng, cfg->n_lists);
        ri = reason_of_list(cfg, li, &g->rng);
        if (roll < 35) {
            sit = S_NAME;
            type = "name_dob";
            ident_synth_name_dob(v, value);
        } else {
            make_ident(v, (unsigned)below(&g->rng, 100), &type, value, sizeof value);
            sit = roll < 85 ? S_LAPSED : roll < 115 ? S_FUTURE : roll < 165 ? S_NARROWED : S_LISTED;
        }
    }
    r = &cfg->reasons[ri];
    scope[0] = '\0';
    /* dates: days since 1970 */
    switch (sit) {
    case S_LAPSED:
        d_from = plat_days_from_civil(2012, 1, 1) + (int64_t)below(&g->rng, 1500);
        d_until = d_from + 30 + (int64_t)below(&g->rng, 700);
        break;
    case S_FUTURE:
        d_from = plat_days_from_civil(2090, 1, 1) + (int64_t)below(&g->rng, 3000);
        break;
    case S_LISTED:
    case S_EXEMPT:
    case S_NARROWED:
    case S_NAME:
    case S_COUNT:
    default:
        d_from = plat_days_from_civil(2015, 1, 1) + (int64_t)below(&g->rng, 3000);
        if (sit == S_LISTED && below(&g->rng, 4) == 0) {
            d_until = plat_days_from_civil(2091, 1, 1) + (int64_t)below(&g->rng, 3000);
        }
        break;
    }
    date_text(d_from, from);
    until[0] = '\0';
    if (d_until >= 0) {
        date_text(d_until, until);
    }
    svc = pick_within(cfg, r, &g->rng);
    if (sit == S_NARROWED) {
        snprintf(scope, sizeof scope, "%s", cfg->services[svc].name);
    }
    service = cfg->services[sit == S_NARROWED ? svc : r->scope[0]].name;
    snprintf(listing, sizeof listing, "%.8s-%04u-%09" PRIu64, cfg->lists[li].id,
             2015u + (unsigned)(d_from / 365 % 10), i + 1);
    fprintf(f, "%s,%s,%s,%s,", cfg->lists[li].id, listing, kind, type);
    csv_field(f, value);
    fprintf(f, ",%s,%s,%s,%s\n", r->id, from, until, scope);

    /* a listed subject is noted once the next row shows it is not exempted */
    if (g->pend.set && sit != S_EXEMPT) {
        note_subject(sj, S_LISTED, g->pend.type, g->pend.value, g->pend.service, g->pend.list,
                     g->pend.listing);
    }
    g->pend.set = 0;
    if (sit == S_EXEMPT) {
        note_subject(sj, S_EXEMPT, type, value, cfg->services[r->scope[0]].name, cfg->lists[li].id,
                     listing);
    } else if (sit != S_LISTED) {
        note_subject(sj, sit, type, value, service, cfg->lists[li].id, listing);
    }
    if (sit == S_LISTED && strcmp(type, "mrz") != 0) {
        snprintf(g->last_type, sizeof g->last_type, "%s", type);
        snprintf(g->last_value, sizeof g->last_value, "%s", value);
        g->last_list = li;
        g->last_reason = ri;
        g->have_last = 1;
        g->pend.set = 1;
        snprintf(g->pend.type, sizeof g->pend.type, "%s", type);
        snprintf(g->pend.value, sizeof g->pend.value, "%s", value);
        snprintf(g->pend.service, sizeof g->pend.service, "%s", service);
        snprintf(g->pend.list, sizeof g->pend.list, "%s", cfg->lists[li].id);
        snprintf(g->pend.listing, sizeof g->pend.listing, "%s", listing);
    } else if (sit != S_EXEMPT) {
        g->have_last = 0;
    }
}

int
main(int argc, char **argv)
{
    struct args a;
    struct feed_config *cfg = NULL;
    struct buf raw = BUF_INIT(FEED_CONFIG_MAX_BYTES);
    struct subjects sj;
    struct gen g;
    uint64_t i;
    FILE *f = NULL;
    int rc, k;

    memset(&sj, 0, sizeof sj);
    memset(&g, 0, sizeof g);
    if (version_asked(argc, argv)) {
        version_print(stdout, "posgate-synth", VERSION_MBEDTLS | VERSION_CJSON | VERSION_UTF8PROC,
                      NULL);
        return EXIT_OK;
    }
    rc = parse_args(argc, argv, &a);
    if (rc != EXIT_OK || a.help) {
        return rc;
    }
    rc = read_config(&a, &raw, &cfg);
    if (rc != EXIT_OK) {
        goto out;
    }
    rc = EXIT_IO;
    if (a.subjects_out != NULL) {
        sj.f = fopen(a.subjects_out, "w");
        if (sj.f == NULL) {
            fprintf(stderr, "posgate-synth: cannot create %s: %s\n", a.subjects_out,
                    strerror(errno));
            goto out;
        }
        fprintf(sj.f, "status,id,service,list,listing_id\n");
    }
    f = fopen(a.out, "w");
    if (f == NULL) {
        fprintf(stderr, "posgate-synth: cannot create %s: %s\n", a.out, strerror(errno));
        goto out;
    }
    fprintf(f, "list,listing_id,kind,id_type,id_value,reason,valid_from,valid_until,scope\n");
    g.rng = a.seed;
    for (i = 0; i < a.count; i++) {
        write_row(cfg, &g, i, f, &sj);
        if (ferror(f)) {
            fprintf(stderr, "posgate-synth: write error on %s\n", a.out);
            goto out;
        }
    }
    if (g.pend.set) {
        note_subject(&sj, S_LISTED, g.pend.type, g.pend.value, g.pend.service, g.pend.list,
                     g.pend.listing);
    }
    /* never listed: identifiers from a separate stream of the generator */
    g.rng = a.seed ^ 0x5eed5eed5eed5eedULL;
    for (k = 0; sj.f != NULL && k < SUBJECTS_PER_KIND; k++) {
        char value[IDENT_SYNTH_CN_RID_SIZE];

        ident_synth_cn_rid(next_u64(&g.rng), value);
        fprintf(sj.f, "clean,cn_rid:%s,%s,,\n", value,
                cfg->services[cfg->reasons[0].scope[0]].name);
    }
    rc = EXIT_OK;
out:
    if (f != NULL && fclose(f) != 0 && rc == EXIT_OK) {
        fprintf(stderr, "posgate-synth: cannot write %s\n", a.out);
        rc = EXIT_IO;
    }
    if (sj.f != NULL && fclose(sj.f) != 0 && rc == EXIT_OK) {
        rc = EXIT_IO;
    }
    feed_config_free(cfg);
    buf_free(&raw);
    return rc;
}
