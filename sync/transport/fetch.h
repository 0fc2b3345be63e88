/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The network fetcher: libcurl behind the carrier interface (carrier.h), used by `posgate sync`
 * and by the daemon's sync loop. One struct fetch holds the options, one reused curl handle, the
 * mirror list, the conditional-GET cache, the partial downloads and the counters; it hands out
 * two borrowed carriers, one for "<mirror>/metadata/<name>" and one for
 * "<mirror>/targets/<name>", to pass to update_run (agent/core/update.h) as metadata and targets.
 * Nothing it fetches is trusted: every byte goes through the TUF client as for `import`.
 *
 * Behaviour (docs/sync.md says the same at more length):
 *   - Mirrors: each fetch tries the mirrors in order; the first complete body wins. A mirror
 *     failing with a transport error, TLS error, timeout, 5xx, 429, any other unexpected status,
 *     or an over-long body is skipped for the next. When no mirror delivers, the result is
 *     NOTFOUND if at least one mirror answered 404/410 (a definitive "no such file": the TUF
 *     workflow asks for "<N+1>.root.json" every time and must not fail because another mirror
 *     is down), else TOOBIG if one sent an over-long body, else RETRY if one answered 429/5xx
 *     or is inside a Retry-After window, else NETWORK. The message lists every mirror's failure.
 *   - Nothing reaches the caller's sink until a body is complete: metadata is spooled in memory
 *     (bounded by max_len), targets in a file "<spool_dir>/<sha256(name)>.part" (in memory when
 *     spool_dir is NULL). So switching mirrors mid-body never mixes two bodies in the sink.
 *   - Resume: a target transfer cut mid-body keeps its .part file (and a .meta file with the
 *     validator); the next fetch of that name, from any mirror and any process, asks for
 *     "Range: bytes=N-" with "If-Range: <ETag or Last-Modified>". 206 with a matching
 *     Content-Range appends; 200 (validator changed or no range support) starts over; 416 drops
 *     the part and starts over. The complete file is replayed into the sink, which is where the
 *     TUF client hashes it, so the whole file is verified as for a download in one piece; the
 *     part files are removed once the body is complete.
 *   - Conditional GET: "timestamp.json" (the poll) is fetched with If-None-Match /
 *     If-Modified-Since from the last 200 of that mirror; a 304 replays the cached body, so the
 *     TUF workflow sees the same file. The cache lives in memory and, when cache_dir is set, in
 *     "<cache_dir>/<sha256(url)>.cache" (format in fetch_spool.c) so one-shot syncs benefit too.
 *   - Retry-After (seconds or HTTP-date) on 429/503 closes that mirror until then: later fetches
 *     skip it without a request. fetch_retry_after_s() says how long until some mirror opens.
 *   - Length caps: max_len is a hard cap (CURLOPT_MAXFILESIZE plus a check of every chunk).
 *   - TLS: with ca_file it is the ONLY trust anchor (CURLOPT_CAINFO, CURLOPT_CAPATH NULL, no
 *     native store); else the system store. Peer and host name are always verified. Client
 *     certificate and key (PEM) for mTLS. Redirects are not followed; http/https only.
 *   - proxy: used when set; otherwise no proxy at all (the environment's *_proxy is ignored).
 *
 * Not thread-safe, except fetch_stats_get and fetch_note_rejected, which may be called from any
 * thread (the daemon's /metrics) while another thread fetches.
 */
#ifndef POSGATE_FETCH_H
#define POSGATE_FETCH_H

#include <stddef.h>
#include <stdint.h>

#include "carrier.h"
#include "posgate_err.h"

#define FETCH_MIRRORS_MAX 8
#define FETCH_ERRMSG_MAX  CARRIER_ERRMSG_MAX
#define FETCH_SYNC_TIMEOUT_S 600 /* default budget of one sync */

/* Failure kinds counted in fetch_stats.failures (one per failed request). */
enum fetch_fail {
    FETCH_FAIL_NETWORK,  /* connection refused/reset, DNS, truncated body, bad framing */
    FETCH_FAIL_HTTP_4XX, /* 4xx other than 404/410 (those count in not_found) */
    FETCH_FAIL_HTTP_5XX,
    FETCH_FAIL_TLS,      /* handshake, untrusted peer, bad client certificate */
    FETCH_FAIL_TIMEOUT,  /* connect/transfer timeout or low-speed abort */
    FETCH_FAIL_TOO_BIG,  /* body longer than the declared length */
    FETCH_FAIL_REJECTED, /* counted by fetch_note_rejected: the verifier refused the feed */
    FETCH_FAIL__COUNT
};

struct fetch_stats {
    uint64_t attempts;     /* HTTP requests sent */
    uint64_t ok;           /* complete 200/206 bodies */
    uint64_t not_modified; /* 304 answers served from the cache */
    uint64_t not_found;    /* 404/410 answers (normal: "no next root") */
    uint64_t resumed;      /* transfers continued with Range (206) */
    uint64_t failures[FETCH_FAIL__COUNT];
    uint64_t bytes; /* body bytes received from the network (not replays) */
};

struct fetch_options {
    const char *const *mirrors; /* base URLs of a feed directory (holding metadata/ and targets/),
                                   http:// or https://, tried in order; copied */
    size_t n_mirrors;           /* 1 .. FETCH_MIRRORS_MAX */
    const char *ca_file;        /* PEM bundle, the only trust for https; NULL: system store */
    const char *client_cert;    /* PEM client certificate (mTLS); needs client_key */
    const char *client_key;     /* PEM private key of client_cert */
    const char *proxy;          /* e.g. "http://127.0.0.1:3128"; NULL: none (env ignored) */
    uint64_t max_recv_bytes_per_s; /* 0: unlimited */
    long connect_timeout_s;        /* 0: 10 */
    long timeout_s;                /* whole transfer; 0: 300 */
    long sync_timeout_s;           /* one whole sync, every file and mirror (fetch_sync_begin);
                                      0: FETCH_SYNC_TIMEOUT_S */
    long low_speed_bytes_per_s;    /* below this ... (0: 1) */
    long low_speed_time_s;         /* ... for this long aborts (0: 30): slow retrieval attack */
    const char *spool_dir;         /* partial target downloads (created 0700); NULL: memory only,
                                      no resume across fetchers. The daemon and `posgate sync`
                                      use "<data_dir>/incoming/partial". */
    const char *cache_dir;         /* conditional-GET cache (created 0700); NULL: memory only.
                                      They use "<data_dir>/http-cache". */
    const char *user_agent;        /* NULL: "posgate/0.1" */
};

struct fetch;

/* Creates a fetcher; opt is copied. INVALID (errmsg says which option) for a bad URL, a
 * client_cert without client_key, no mirrors or too many; IO when a directory cannot be made. */
POSGATE_WUR enum posgate_err fetch_new(const struct fetch_options *opt, struct fetch **out,
                                       char *errmsg, size_t errcap);
/* Frees the fetcher and its two carriers; NULL is a no-op. */
void fetch_free(struct fetch *f);

/* Borrowed carriers, valid until fetch_free (do not carrier_free them). Names are relative to
 * "<mirror>/metadata/" and "<mirror>/targets/". Only metadata "timestamp.json" is fetched
 * conditionally; only the targets carrier resumes. */
struct carrier *fetch_metadata_carrier(struct fetch *f);
struct carrier *fetch_targets_carrier(struct fetch *f);

/* Starts a sync's time budget (sync_timeout_s from now; fetch_new starts the first): past it
 * no request is sent and a transfer under way is cut. Also forgets which mirrors were slow:
 * within a sync a mirror that timed out is asked only after the others. */
void fetch_sync_begin(struct fetch *f);
/* Stops every transfer of f within about a second, now and for good (thread-safe): the
 * fetches under way fail with NETWORK "cancelled" and the update they serve installs nothing.
 * The daemon calls it on SIGTERM. */
void fetch_cancel(struct fetch *f);

/* Removes the partial downloads left in the spool dir (each ".part" with its ".meta"), skipping
 * one a transfer holds right now (flock). Call after an update succeeded: every target it
 * needed is complete by then, so what is left belongs to versions abandoned half-way (a delta
 * that fell back to a snapshot, a snapshot superseded while it downloaded), which would
 * otherwise stay on the kiosk's disk for good. *removed (may be NULL) counts the files. */
void fetch_prune_spool(struct fetch *f, unsigned *removed);

/* A copy of the counters (thread-safe). */
void fetch_stats_get(struct fetch *f, struct fetch_stats *out);
/* Counts a feed the verifier refused (update_run returned REJECTED) (thread-safe). */
void fetch_note_rejected(struct fetch *f);
/* Prometheus label of a kind: "network", "http_4xx", "http_5xx", "tls", "timeout", "too_big",
 * "rejected". */
const char *fetch_fail_name(enum fetch_fail k);

/* Seconds until at least one mirror may be asked again: 0 unless EVERY mirror is inside a
 * Retry-After window it was given (then the shortest remaining window, rounded up). The daemon
 * schedules its next attempt no earlier than this. */
uint64_t fetch_retry_after_s(struct fetch *f);

/* Full-jitter backoff: uniform in [0, min(cap_s, base_s * 2^attempt)] from the CSPRNG, computed
 * in uint64_t with the shift capped (no overflow for any attempt). attempt counts failures so
 * far, from 0. Never more than cap_s; 0 when base_s or cap_s is 0. */
uint64_t fetch_backoff_s(unsigned attempt, uint64_t base_s, uint64_t cap_s);

/* Parses a Retry-After value: delta-seconds ("120") or an HTTP-date ("Wed, 21 Oct 2015
 * 07:28:00 GMT"; also the obsolete RFC 850 and asctime forms), relative to now (seconds since
 * the epoch). A date in the past gives 0. Values are capped at 86400. INVALID when malformed. */
POSGATE_WUR enum posgate_err fetch_parse_retry_after(const char *value, int64_t now,
                                                     uint64_t *out_s);

/* HTTP-date <-> seconds since the epoch (shared with posgate-hub). Parsing accepts the three
 * forms above; formatting writes IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT", 30 bytes with
 * the NUL). */
POSGATE_WUR enum posgate_err fetch_parse_http_date(const char *value, int64_t *out);
void fetch_format_http_date(int64_t t, char *out, size_t cap);

/* The one TLS setup of every libcurl handle (fetch, carrier_http, uploader): peer and host
 * verified; with ca_file (NULL or "": the system store) that bundle is the only trust
 * (CURLOPT_CAINFO, CURLOPT_CAPATH NULL); with client_cert, mutual TLS with client_key (PEM).
 * curl is a CURL * (void * here, so that libcurl's header stays inside the fetch modules). */
void fetch_curl_tls(void *curl, const char *ca_file, const char *client_cert,
                    const char *client_key);

/* The run-time libcurl version ("7.88.1"), for --version. */
const char *fetch_curl_version(void);

#endif
