/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The PostgreSQL store's parts shared by its files: the connection, query parameters and the
 * helpers that run a statement (hub_db_pg.c), used by the ingest (hub_db_pg_ingest.c).
 */
#ifndef POSGATE_HUB_DB_PG_INTERNAL_H
#define POSGATE_HUB_DB_PG_INTERNAL_H

#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

#include "hub_store.h"

struct pg {
    PGconn *c;
    pthread_mutex_t mu;  /* one transaction at a time on the connection */
    int64_t month_ready; /* months since 1970 whose partition exists (0: none known) */
    uint32_t prepared;   /* the ingest's statements prepared on this connection (bit per one) */
    /* the ingest's own connections, opened when first used (NULL in a lane itself): batches
     * are judged on as many at once as posgate-hub serve has request threads */
    struct pg *lanes; /* HPG_LANES_MAX of them, n_lanes in use */
    unsigned n_lanes;
    char *uri;
    unsigned next_lane;
    struct hpg_keys *keys; /* enrolled keys known to this process (hub_db_pg_ingest.c) */
};

#define HPG_LANES     4  /* connections for the ingest unless serve --db-connections says */
#define HPG_LANES_MAX 16

/* Query parameters, as text, or binary for a hash or an array. */
#define HPG_MAX_PARAMS 22
struct params {
    int n;
    const char *v[HPG_MAX_PARAMS];
    int len[HPG_MAX_PARAMS];
    int fmt[HPG_MAX_PARAMS];
    char num[HPG_MAX_PARAMS][24];
};

static inline void
p_text(struct params *p, const char *s, size_t len)
{
    p->v[p->n] = s;
    p->len[p->n] = (int)len;
    p->fmt[p->n++] = 0;
}

static inline void
p_str(struct params *p, const char *s)
{
    p_text(p, s, s != NULL ? strlen(s) : 0);
}

static inline void
p_int(struct params *p, int64_t v)
{
    snprintf(p->num[p->n], sizeof(p->num[0]), "%" PRId64, v);
    p_str(p, p->num[p->n]);
}

static inline void
p_null(struct params *p)
{
    p->v[p->n] = NULL;
    p->len[p->n] = 0;
    p->fmt[p->n++] = 0;
}

static inline void
p_hash(struct params *p, const uint8_t h[AUDIT_HASH_LEN])
{
    p->v[p->n] = (const char *)h;
    p->len[p->n] = AUDIT_HASH_LEN;
    p->fmt[p->n++] = 1;
}

/* Runs sql (p NULL: the simple protocol, several statements allowed); *out gets the result
 * when it has the status wanted (the caller clears it). RETRY for what another attempt may
 * pass, else IO, with the server's message in errmsg. */
enum posgate_err hpg_run(struct pg *db, const char *sql, const struct params *p,
                         ExecStatusType want, PGresult **out, char *errmsg, size_t errcap);
enum posgate_err hpg_cmd(struct pg *db, const char *sql, const struct params *p, char *errmsg,
                         size_t errcap);
/* The failure of a statement (r may be NULL: the connection's message), as hpg_run says. */
enum posgate_err hpg_fail(struct pg *db, PGresult *r, const char *what, char *errmsg,
                          size_t errcap);
/* The first column of the first row (0 when there is none). */
enum posgate_err hpg_query_u64(struct pg *db, const char *sql, const struct params *p,
                               uint64_t *out, char *errmsg, size_t errcap);
/* An integer column (NULL: -1), and a bytea column read as text: 1 when it is 32 bytes. */
int64_t hpg_col_i(const PGresult *r, int row, int c);
int hpg_col_hash(const PGresult *r, int row, int c, uint8_t out[AUDIT_HASH_LEN]);
/* The partitions of events for the month of now_s and the next, outside any transaction. */
enum posgate_err hpg_ensure_partition(struct pg *db, int64_t now_s, char *errmsg, size_t errcap);
/* A connection that broke (a server restart) is reset before the next transaction. */
void hpg_reconnect(struct pg *db);

/* hub_store_ops.ingest (hub_db_pg_ingest.c). */
enum posgate_err hpg_ingest(void *impl, const struct hub_batch *b, const char *key, int64_t now_s,
                            struct hub_ingest *res);
/* The enrolled keys kept by the ingest, made when the store opens and freed when it closes. */
struct hpg_keys *hpg_keys_new(void);
void hpg_keys_free(struct hpg_keys *k);
/* hub_store_ops.set_connections: 1..HPG_LANES_MAX, before the first batch. */
enum posgate_err hpg_set_connections(void *impl, unsigned n);
/* Batches the ingest stored in one statement, and the ones it judged in full (for tests). */
void hpg_ingest_counts(void *impl, uint64_t *appended, uint64_t *judged);

#endif
