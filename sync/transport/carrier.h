/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Carriers: the untrusted transports that bring TUF metadata and targets to the kiosk (a
 * directory on a USB stick, an HTTP(S) server or CDN, later a bundle file). All of them sit
 * behind one interface, struct carrier, with one operation: fetch a file by its relative name
 * with a hard cap on its length, streaming the bytes into a sink. Nothing a carrier returns is
 * trusted; the TUF client verifies every byte. A carrier tells "this file does not exist"
 * (NOTFOUND: HTTP 404/410, ENOENT) apart from every other failure, because the TUF workflow
 * treats a missing next root as "no rotation" and anything else as an error.
 *
 * Names are relative paths of '/'-separated segments ("3.root.json", "lists/x/ab12.snap.bin"):
 * no leading '/', no empty, "." or ".." segment, no NUL or control byte; others are refused
 * with INVALID. The HTTP carrier percent-encodes bytes that may not appear in a URL path
 * (space, '"', '#', '?', '%' is kept as is so callers may pass already escaped names) and
 * appends the name to its base URL; the directory carrier opens the name below its root.
 *
 * Length cap (the endless data attack): fetch never delivers more than max_len bytes to the
 * sink. When the source holds more, fetch stops reading and returns TOOBIG; a sink may already
 * have received max_len bytes by then, so callers write into temporary storage.
 */
#ifndef POSGATE_CARRIER_H
#define POSGATE_CARRIER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "posgate_err.h"

#define CARRIER_NAME_MAX   1024
#define CARRIER_ERRMSG_MAX 512

/* Where fetched bytes go. write is called with consecutive chunks; a non-OK return aborts the
 * fetch and is returned by carrier_fetch unchanged. */
struct carrier_sink {
    enum posgate_err (*write)(void *ctx, const uint8_t *data, size_t len);
    void *ctx;
    /* Optional (NULL: none). A carrier with several sources (the mirrors of fetch.h) calls check
     * once a body is complete; a non-OK answer (the bytes fail verification) makes it call reset
     * (forget every byte written) and try the next source. Carriers with one source ignore both:
     * the caller verifies after the fetch in any case. */
    enum posgate_err (*check)(void *ctx);
    void (*reset)(void *ctx);
};

struct carrier;

/* The operations of one carrier kind. Implementations fill c->errmsg on failure. */
struct carrier_ops {
    const char *kind; /* "dir", "http", "bundle" */
    enum posgate_err (*fetch)(struct carrier *c, const char *name, uint64_t max_len,
                              const struct carrier_sink *sink, uint64_t *got);
    void (*destroy)(struct carrier *c); /* frees the implementation's state and c */
};

/* The common head of every carrier; implementations embed it as their first member. */
struct carrier {
    const struct carrier_ops *ops;
    char errmsg[CARRIER_ERRMSG_MAX]; /* last failure, "" after success */
};

/*
 * Fetches name into sink, at most max_len bytes. Returns
 *   OK        the whole file was delivered (*got, when not NULL, holds its length);
 *   NOTFOUND  the file does not exist (HTTP 404 or 410, ENOENT);
 *   TOOBIG    the file is longer than max_len (nothing past max_len was delivered);
 *   INVALID   a NULL argument or a name that breaks the rules above;
 *   NETWORK / IO / RETRY  transport failures; or whatever the sink returned.
 * carrier_errmsg() says what happened ("GET http://h/3.root.json: HTTP 500").
 */
POSGATE_WUR enum posgate_err carrier_fetch(struct carrier *c, const char *name, uint64_t max_len,
                                           const struct carrier_sink *sink, uint64_t *got);
/* Fetches name into out (reset first); the cap is the smaller of max_len and out->max. */
POSGATE_WUR enum posgate_err carrier_fetch_buf(struct carrier *c, const char *name,
                                               uint64_t max_len, struct buf *out);
/* The last failure's message; never NULL. */
const char *carrier_errmsg(const struct carrier *c);
/* Frees a carrier; NULL is a no-op. */
void carrier_free(struct carrier *c);
/* INVALID unless name follows the rules above (shared by every implementation). */
POSGATE_WUR enum posgate_err carrier_check_name(const char *name);
/* As carrier_fetch_buf, with check(check_ctx, out) called on each complete body (see
 * struct carrier_sink): a source whose body fails it is skipped for the next. */
POSGATE_WUR enum posgate_err carrier_fetch_buf_checked(struct carrier *c, const char *name,
                                                       uint64_t max_len, struct buf *out,
                                                       enum posgate_err (*check)(void *check_ctx,
                                                                                 const struct buf *b),
                                                       void *check_ctx);
/* A sink that appends to a struct buf (bounded by the buf's max: TOOBIG past it). */
void carrier_sink_buf(struct carrier_sink *s, struct buf *b);

/* A directory: name resolves to root "/" name; symbolic links are followed. The root is
 * copied. */
POSGATE_WUR enum posgate_err carrier_dir_new(const char *root, struct carrier **out);

/* HTTP(S) GET through libcurl. */
struct carrier_http_options {
    const char *ca_file;    /* PEM bundle for HTTPS; NULL: the system store */
    long connect_timeout_s; /* 0: 10 s */
    long timeout_s;         /* whole transfer; 0: 300 s */
    long low_speed_limit;   /* bytes/s below which ... (0: 1 byte/s) */
    long low_speed_time_s;  /* ... for this long aborts (0: 30 s): the slow retrieval attack */
    const char *user_agent; /* NULL: "posgate/<version>" */
};
/* base_url is copied; a '/' is added when it does not end in one. opt may be NULL (defaults).
 * Only http:// and https:// are allowed; redirects are not followed. */
POSGATE_WUR enum posgate_err carrier_http_new(const char *base_url,
                                              const struct carrier_http_options *opt,
                                              struct carrier **out);

#endif
