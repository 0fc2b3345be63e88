/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The insides of the public handles (posgate.h), shared by api.c, the JSON report codec
 * (report.c), the CLI and the daemon. Not installed.
 */
#ifndef POSGATE_API_INTERNAL_H
#define POSGATE_API_INTERNAL_H

#include <pthread.h>

#include "audit.h"
#include "buf.h"
#include "crypto.h"
#include "datadir.h"
#include "device_key.h"
#include "engine.h"
#include "ident.h"
#include "posgate.h"
#include "store.h"

#define API_READERS_MAX  128
#define API_SERVICE_MAX  64
#define API_OPERATOR_MAX 128
#define API_ERRMSG_MAX   512
#define API_OVERRIDE_MAX AUDIT_OVERRIDE_MAX
#define POSGATE_AT_TOLERANCE_S 300               /* default service-date tolerance */
#define POSGATE_AT_HORIZON_S   (120 * 86400LL)   /* default service-date horizon */

struct posgate {
    struct datadir dd;
    struct store *st;
    struct crypto_hmac_key hmac;            /* list key pads, computed once */
    char key_check[LIST_KEY_CHECK_HEX + 1]; /* its check value (list_key.h), computed once */
    pthread_mutex_t lock;                   /* guards the reader pool */
    /* every use of st: one SQLite connection opened without SQLite's own mutex, which admits
     * one thread at a time (posgate.h lets any number of threads share the handle). Taken
     * after lock when both are held, never the other way round. */
    pthread_mutex_t st_lock;
    struct store_reader *readers[API_READERS_MAX];
    size_t n_readers;
    uint8_t id_prefix[8];      /* random per open: decision ids stay unique across restarts */
    uint64_t id_counter;       /* atomic */
    struct device_key *dk;     /* the device key (audit batch signatures) */
    struct audit_queue *audit; /* every decision goes here before posgate_check returns */
    int64_t at_tolerance_s;    /* a service date may lie this far before now (clock skew) */
    int64_t at_horizon_s;      /* ... and at most this far after it */
    /* tuf/ and the store found to agree (update_meta_agreement) for this store version;
     * rechecked when a check sees another version. Guarded by lock. */
    int agree_known;
    int64_t agree_feed, agree_root;
    enum posgate_err agree_err;
    char agree_msg[API_ERRMSG_MAX];
};

struct posgate_request {
    char service[API_SERVICE_MAX + 1];
    char operator_id[API_OPERATOR_MAX + 1];
    size_t n_ids;
    size_t ids_used; /* ids a parse has written into since the last reset: ids[ids_used..] are 0 */
    int has_at;
    int64_t at;
    int has_override; /* a supervisor override of a DENY (posgate_request_set_override) */
    char override_by[API_OPERATOR_MAX + 1];
    char override_reason[API_OVERRIDE_MAX + 1];
    char errmsg[API_ERRMSG_MAX];
    /* last, so that posgate_request_reset wipes everything before them and the ids in use: a
     * kiosk's request names one person by one or two of the eight */
    struct ident ids[ENGINE_IDS_MAX];
};

struct posgate_result {
    enum posgate_err err;
    struct engine_result eng;
    char service[API_SERVICE_MAX + 1];
    char decision_id[33];
    int64_t at;
    int64_t feed_version;
    int64_t expires_at;   /* the installed metadata's expiry (0: none installed) */
    int64_t checked_now;  /* the wall clock of the check */
    const char *list_key; /* "ok", "mismatch" or "none" (static text) */
    int overridden; /* the DENY was turned by a supervisor override (override_by, _reason) */
    char override_by[API_OPERATOR_MAX + 1];
    char override_reason[API_OVERRIDE_MAX + 1];
    uint64_t audit_seq; /* the event's seq once committed; 0 for a batched ALLOW */
    char errmsg[API_ERRMSG_MAX];
    struct buf json;
    struct buf texts; /* the reasons' texts, copied from the reader's config (own_texts) */
};

/* The report codec (report.c): the check and status JSON objects. */
/* {"error": {"code": NAME, "field": field or null, "message": msg}}: the error form of
 * `posgate check --json`. */
POSGATE_WUR enum posgate_err report_error_json(enum posgate_err err, const char *field,
                                               const char *msg, struct buf *out);
/* The field an input error's message names ("ids[1]: cn_rid: ..." -> "ids[1]"), into out; ""
 * when it names none. */
void report_error_field(const char *msg, char *out, size_t cap);
POSGATE_WUR enum posgate_err report_result_json(const struct posgate_result *res, struct buf *out);
/* The same object built as a cJSON tree and printed: the definition report_result_json's direct
 * writer follows byte for byte (and what it uses for a result that carries an error). */
POSGATE_WUR enum posgate_err report_result_json_tree(const struct posgate_result *res,
                                                     struct buf *out);
/* key_check: the kiosk's list key check value, compared with the installed feed's; audit: the
 * queue's figures (disk_full, reserve_bytes), NULL when unknown; disagreement: why tuf/ and the
 * store disagree (update_meta_agreement), NULL when they agree. */
POSGATE_WUR enum posgate_err report_status_json(struct store *st, const char *key_check,
                                                const struct audit_stats *audit,
                                                const char *disagreement, int64_t now,
                                                struct buf *out);
/* NULL when the trusted metadata and the store agree for the store's version m, else why not
 * (into msg). */
const char *api_meta_disagreement(struct posgate *pg, const struct store_meta *m, char *msg,
                                  size_t cap);

#endif
