/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The insides of the network fetcher (fetch.h), shared by its files; private to sync/transport/
 * (and its unit tests):
 *
 *   +----------------+---------------------------------------------------------------------+
 *   | fetch.c        | options and life cycle, the one libcurl/TLS setup (fetch_curl_tls), |
 *   |                | the carrier that asks the mirrors in turn, backoff, Retry-After     |
 *   | fetch_mirror.c | one mirror's attempt at one file: URL, request, libcurl callbacks,  |
 *   |                | what the answer means                                               |
 *   | fetch_spool.c  | bodies until complete (memory or part files), pruning of part       |
 *   |                | files, the conditional-GET cache on disk (file formats there)       |
 *   +----------------+---------------------------------------------------------------------+
 *
 * Functions shared between the files carry the prefix fx_.
 */
#ifndef POSGATE_FETCH_INTERNAL_H
#define POSGATE_FETCH_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "buf.h"
#include "carrier.h"
#include "fetch.h"
#include "posgate_err.h"

#define FETCH_URL_MAX       4096
#define FETCH_PATH_MAX      4096
#define FETCH_COND_BODY_MAX (1024 * 1024)
#define FETCH_MEM_SPOOL_MAX ((uint64_t)512 * 1024 * 1024)
/* metadata bodies: the metadata parser's limit (tuf_meta.h TUF_META_MAX_LEN), whatever length
 * the caller allows, so no signed length can make the memory spool hold more */
#define FETCH_META_MAX        ((uint64_t)16 * 1024 * 1024)
#define FETCH_ERRBODY_MAX     512
#define FETCH_HDR_MAX         256
#define FETCH_RETRY_AFTER_MAX 86400
#define FETCH_CHUNK           65536
/* part files left by syncs that never completed: older ones, and all but the newest few, go
 * (fx_prune_stale), so no run of failed updates fills the disk */
#define FETCH_PART_MAX_AGE_S (7 * 86400)
#define FETCH_PARTS_MAX      8

/* Conditional GET state of one URL. */
struct cond_entry {
    int valid;
    char etag[FETCH_HDR_MAX];
    char last_modified[FETCH_HDR_MAX];
    struct buf body;
};

struct mirror {
    char base[FETCH_URL_MAX]; /* ends in '/' */
    int https;
    uint64_t closed_until_ns; /* plat_mono_ns() before which a Retry-After asks us to wait */
    int slow;             /* timed out in this sync: asked after the others (fetch_sync_begin) */
    struct cond_entry ts; /* metadata/timestamp.json */
};

struct fetch_carrier {
    struct carrier base; /* first */
    struct fetch *f;
    int targets; /* 0: metadata/, 1: targets/ */
};

struct fetch {
    struct fetch_carrier meta, tgt;
    CURL *curl;
    struct mirror *mirrors;
    size_t n_mirrors;
    char ca_file[FETCH_PATH_MAX];
    char client_cert[FETCH_PATH_MAX];
    char client_key[FETCH_PATH_MAX];
    char proxy[FETCH_URL_MAX];
    char spool_dir[FETCH_PATH_MAX - 64]; /* room for "/<32 hex>.part" */
    char cache_dir[FETCH_PATH_MAX - 64];
    char user_agent[128];
    pthread_mutex_t lock; /* guards stats */
    struct fetch_stats stats;
    long timeout_ms;           /* one transfer */
    long sync_timeout_s;       /* one sync (fetch_sync_begin) */
    uint64_t sync_deadline_ns; /* plat_mono_ns() past which no request starts or runs */
    atomic_int cancelled;      /* fetch_cancel: every transfer stops */
};

/* Where a response body goes while it arrives. */
struct spool {
    int fd; /* the part file, or -1 for memory */
    struct buf mem;
    uint64_t len; /* bytes held */
    char part[FETCH_PATH_MAX];
    char meta[FETCH_PATH_MAX];
    char etag[FETCH_HDR_MAX]; /* validator of the held bytes */
    char last_modified[FETCH_HDR_MAX];
};

/* How one mirror's attempt ended. */
enum outcome {
    OUT_OK,
    OUT_NOTFOUND,
    OUT_TOOBIG,
    OUT_RETRY,   /* 429/5xx or a Retry-After window */
    OUT_NETWORK, /* transport, TLS, timeout, other statuses */
    OUT_LOCAL    /* a local failure (spool I/O, memory): no point in another mirror */
};

/* ---- fetch.c: small helpers ---- */

/* Counts one failure of kind k / adds n to a counter of f->stats (under f->lock). */
void fx_count_fail(struct fetch *f, enum fetch_fail k);
void fx_count(struct fetch *f, uint64_t *field, uint64_t n);
/* Appends to dst (NUL-terminated, capacity cap) without overflowing. */
void fx_append(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* snprintf that truncates quietly (messages and paths whose length was checked). */
void fx_msgf(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* 1 when s[0..n) is 1 or more decimal digits with a value of at most max (into *out). */
int fx_parse_uint(const char *s, size_t n, uint64_t max, uint64_t *out);

/* ---- fetch_spool.c: the conditional-GET cache and the spools ---- */

/* Loads mirror m's cached timestamp.json (when cache_dir is set and the file is good). */
void fx_cache_load(struct fetch *f, struct mirror *m);
/* Writes the cache file of url (best effort: a failure is logged). */
void fx_cache_save(struct fetch *f, const char *url, const struct cond_entry *e);
/* Opens the spool of one fetch: the part file of a target when there is a spool dir (its bytes
 * and validator loaded for a resume), else memory. Close with fx_spool_close, also on failure. */
enum posgate_err fx_spool_open(struct fetch *f, int targets, const char *name, uint64_t max_len,
                               struct spool *sp);
/* Closes the spool; remove_files also removes its part and .meta files. */
void fx_spool_close(struct spool *sp, int remove_files);
/* Forgets the held bytes and their validator. */
enum posgate_err fx_spool_truncate(struct spool *sp);
enum posgate_err fx_spool_write(struct spool *sp, const void *data, size_t n);
/* Records the validator of the bytes now being written (the start of a 200). */
void fx_spool_set_validator(struct spool *sp, const char *name, const char *etag, const char *lm);
/* Feeds the complete spool into the caller's sink. */
enum posgate_err fx_spool_replay(struct spool *sp, const struct carrier_sink *sink);
/* Removes stale part files (see FETCH_PART_MAX_AGE_S, FETCH_PARTS_MAX). */
void fx_prune_stale(struct fetch *f);

/* ---- fetch_mirror.c: one mirror ---- */

/* One mirror's attempt at name: at most two requests (a failed resume is retried once from the
 * start). On OUT_OK the complete body is in sp, or cached (*use_cache set: a 304); otherwise
 * msg says why. */
enum outcome fx_try_mirror(struct fetch *f, struct mirror *m, int targets, const char *name,
                           uint64_t max_len, struct spool *sp, int *use_cache, char *msg,
                           size_t cap);

#endif
