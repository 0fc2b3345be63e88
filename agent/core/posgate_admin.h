/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin interface of the kiosk library: what the posgate command line (agent/cli) and the
 * posgated daemon (agent/daemon) need beyond posgate.h. They include only posgate.h, this
 * header, platform/ and the bounded JSON parser (tools/check-layers.sh holds them to it); the
 * store, the update pipeline, the audit queue, the fetcher and the API's private struct stay
 * behind it. Not installed: it may change with the programs built beside it.
 */
#ifndef POSGATE_ADMIN_H
#define POSGATE_ADMIN_H

#include "posgate.h"

/* posgate_open() with its message in a caller buffer (errmsg may be NULL): the command line
 * and the daemon open through it (posgate_err.h, "One way to carry what went wrong"). */
POSGATE_WUR enum posgate_err posgate_admin_open(const char *data_dir, struct posgate **out,
                                                char *errmsg, size_t errcap);

/* ==== the posgate command line ============================================================ */
/*
 * What `posgate` (agent/cli) does beyond posgate.h: one call per step of a command, implemented
 * in agent/core/admin_cli*.c. The command line keeps the argument parsing, the help texts, the
 * printing and the exit codes. Throughout:
 *   - data_dir NULL means $POSGATE_DATA_DIR, else /var/lib/posgate (as for posgate_open);
 *   - a call that can fail returns enum posgate_err and, where it takes msg and cap, writes what
 *     went wrong into msg (NUL-terminated), the text to print after "posgate COMMAND: "; a msg
 *     left "" means posgate_strerror(err) says it all;
 *   - a struct buf (platform/buf.h) passed in is the caller's: reset or appended to as said,
 *     freed by the caller with buf_free; opaque handles are freed by their _free or _close,
 *     which take NULL.
 */
#include <stdio.h>

struct buf;

#define POSGATE_CLI_PATH_MAX          4096 /* a data dir or file path, with its NUL */
#define POSGATE_CLI_JURISDICTIONS_MAX 16   /* gate jurisdictions of a kiosk */
#define POSGATE_CLI_KEY_CHECK_LEN     16   /* hex digits of a list key fingerprint */
#define POSGATE_CLI_DEVICE_ID_LEN     32   /* hex digits of a device id */
#define POSGATE_CLI_MIRRORS_MAX       8    /* --url of one sync */
#define POSGATE_CLI_FETCH_FAILS       7    /* kinds of fetch failure counted */
#define POSGATE_CLI_STATUS_LISTS      64   /* lists described by posgate_cli_status */

/* `posgate --version`: when argv[1] is "--version", prints "posgate VERSION" and the versions
 * of the libraries it runs on to out and returns 1; else 0, nothing printed. */
int posgate_cli_version(int argc, char **argv, FILE *out);

/* The data dir's path into root. TOOBIG when it is too long to hold the paths below it. */
POSGATE_WUR enum posgate_err posgate_cli_data_dir(const char *data_dir,
                                                  char root[POSGATE_CLI_PATH_MAX]);

/* `posgate init`: creates the data dir (mode 0700) with the TUF root at root_file (which must be
 * signed by a threshold of its own keys), a copy of the 32-byte list key at list_key_file, a new
 * device key pair unless one is there, and a store holding the n (<=
 * POSGATE_CLI_JURISDICTIONS_MAX) two-letter gate jurisdictions. fingerprint gets the list key's
 * check value. Errors, each with msg: USAGE (the data dir is initialised already, the list key
 * file does not hold 32 bytes, the root file does not exist), REJECTED (the root is refused),
 * IO (anything else). */
POSGATE_WUR enum posgate_err posgate_cli_init(const char *data_dir, const char *root_file,
                                              const char *list_key_file,
                                              const char *const *jurisdictions, size_t n,
                                              char fingerprint[POSGATE_CLI_KEY_CHECK_LEN + 1],
                                              char *msg, size_t cap);

/* Where a feed comes from, for posgate_cli_update: a feed directory, a bundle file or web
 * mirrors. */
struct posgate_cli_source;

/* A feed directory (holding metadata/ and targets/) or a bundle file (`posgate-publish
 * bundle`) at path; nothing of the feed is read yet. Errors: the directory cannot be used, or
 * the bundle's index cannot be read (msg says why, or ""); IO and NOMEM for the system's. */
POSGATE_WUR enum posgate_err
posgate_cli_source_path(const char *path, struct posgate_cli_source **out, char *msg, size_t cap);

/* The options of `posgate sync`; 0 and NULL are the defaults. The strings are borrowed for the
 * call. */
struct posgate_cli_mirrors {
    const char *const *urls;              /* feed base URLs, tried in order */
    size_t n_urls;                        /* 1 .. POSGATE_CLI_MIRRORS_MAX */
    const char *ca_file;                  /* the only trust for https; NULL: the system store */
    const char *client_cert, *client_key; /* both or neither */
    const char *proxy;
    uint64_t max_recv_bytes_per_s;
    long connect_timeout_s, timeout_s, sync_timeout_s;
};

/* Web mirrors, with the resume and conditional-GET caches of an initialised data dir (DIR/
 * incoming/partial, DIR/http-cache; memory only while it is not initialised). Errors with msg:
 * INVALID (an option is refused), others. */
POSGATE_WUR enum posgate_err posgate_cli_source_mirrors(const char *data_dir,
                                                        const struct posgate_cli_mirrors *m,
                                                        struct posgate_cli_source **out, char *msg,
                                                        size_t cap);
void posgate_cli_source_free(struct posgate_cli_source *src);

struct posgate_cli_update_options {
    int accept_expired; /* expired metadata, only for a feed newer than the installed one */
    int progress;       /* draw progress bars on a terminal */
    long lock_wait_ms;  /* for another update of the data dir: 0 60 s, < 0 not at all */
};

/* What an update did (the figures of agent/core/update.h's update_result). */
struct posgate_cli_update_result {
    int changed; /* list data changed */
    int64_t feed_version, previous_version;
    unsigned snapshots, deltas, dropped, fallbacks;
    uint64_t entries_changed;
    int expired_accepted;
    double install_s;
    uint64_t merged_rows, filter_keys; /* the merge after the commit, the key filter rebuilt */
    double merge_s;
};

/* `posgate import` and `sync`, and step 1 of `field-sync`: installs the newest verified feed
 * version from src into the data dir (every file verified before it is used), or changes
 * nothing. res is zeroed first and filled as far as the update went, also on an error. Errors
 * as agent/core/update.h's update_run, msg saying why: REJECTED (the feed was refused),
 * NOTFOUND (no store: posgate init), RETRY (another update holds the data dir past
 * o->lock_wait_ms), NETWORK or IO (the source failed), CORRUPT, NOMEM. A mirror source counts a
 * refusal in its stats and, after a success, prunes its resume spool. */
POSGATE_WUR enum posgate_err posgate_cli_update(const char *data_dir,
                                                struct posgate_cli_source *src,
                                                const struct posgate_cli_update_options *o,
                                                struct posgate_cli_update_result *res, char *msg,
                                                size_t cap);

/* A mirror source's transfer figures so far (zero for a path source). */
struct posgate_cli_fetch_stats {
    uint64_t attempts, ok, not_modified, not_found, resumed, bytes;
    struct {
        const char *name; /* static text: "network", "http_4xx", ... */
        uint64_t n;
    } failures[POSGATE_CLI_FETCH_FAILS];
    uint64_t retry_after_s; /* until some mirror may be asked again; 0: now */
};
void posgate_cli_source_stats(struct posgate_cli_source *src, struct posgate_cli_fetch_stats *out);

/* `posgate compact`: merges the store's recent changes into its main table, then rebuilds the
 * key filter when the installed version has none usable, holding the data dir's update lock.
 * *merged_rows and *filter_keys (0: no rebuild needed) say what was done, also on an error.
 * Errors with msg (or ""): RETRY (another update holds the data dir), the store's. */
POSGATE_WUR enum posgate_err posgate_cli_compact(const char *data_dir, uint64_t *merged_rows,
                                                 uint64_t *filter_keys, char *msg, size_t cap);

/* `posgate check`: the feed version a checked result was read from into *feed_version, and its
 * footing line ("footing: service date ..., data age ..., feed ..., list key ..., stale lists:
 * ...\n": what the answer stands on) into line (reset first). NOMEM. */
POSGATE_WUR enum posgate_err posgate_cli_result_footing(const struct posgate_result *res,
                                                        int64_t *feed_version, struct buf *line);

/* The error object of `posgate check --json` into out (reset first): {"error": {"code", "field",
 * "message"}}. field: the option or request field it is about; NULL with INVALID: the field
 * msg names, if any; else null. NOMEM. */
POSGATE_WUR enum posgate_err posgate_cli_error_json(enum posgate_err err, const char *field,
                                                    const char *msg, struct buf *out);

/* `posgate status` without --json (--json is posgate_status_json): the installed feed as
 * posgate_cli_status finds it on an open kiosk, at one wall clock reading (now). Errors: IO when
 * the store cannot be read (msg says why). */
struct posgate_cli_status {
    char data_dir[POSGATE_CLI_PATH_MAX];
    int64_t now;
    int64_t feed_version, root_version; /* 0: no feed installed */
    int64_t issued_at, installed_at, expires_at, newest_issue_seen;
    char jurisdictions[POSGATE_CLI_JURISDICTIONS_MAX][3];
    size_t n_jurisdictions;
    char key_check[POSGATE_CLI_KEY_CHECK_LEN + 1]; /* the data dir's list key fingerprint */
    int key_ok;             /* the installed feed is keyed with it, or none is installed */
    int key_installed;      /* with key_ok: a feed is installed (0: none) */
    char key_msg[512];      /* !key_ok: the mismatch, or why the feed's config cannot be read */
    const char *key_filter; /* the key filter's state (static text), NULL: unknown */
    int key_filter_ok;      /* ... and it is usable */
    int disk_full;          /* the audit queue records on its reserve */
    int meta_disagrees;     /* the trusted metadata and the store disagree: checks are refused */
    char meta_msg[512];     /* ... how */
    size_t n_lists;         /* lists installed; the first POSGATE_CLI_STATUS_LISTS are described */
    struct posgate_cli_status_list {
        char id[65];
        uint64_t seq, entries;
        int64_t fresh_at; /* fresh as of (wall seconds) */
        char digest[65];  /* the signed state digest, hex */
        int stale;        /* older than its signed stale_after at now */
    } lists[POSGATE_CLI_STATUS_LISTS];
};
POSGATE_WUR enum posgate_err posgate_cli_status(struct posgate *pg, struct posgate_cli_status *out,
                                                char *msg, size_t cap);

/* `posgate verify`: recomputes every installed list's state digest from the rows and compares
 * it with the signed one, checks the trusted TUF metadata, and that the installed feed is keyed
 * with the data dir's list.key. *n_lists: the lists installed (0 until they are read). Errors,
 * msg saying what (or ""): CORRUPT or REJECTED (damaged, or changed behind posgate's back),
 * others. */
POSGATE_WUR enum posgate_err posgate_cli_verify(const char *data_dir, size_t *n_lists, char *msg,
                                                size_t cap);

/* The audit queue of a data dir, opened read-only (no writer: the daemon may append
 * meanwhile). */
struct posgate_cli_audit;

/* Opens it. OK with *out NULL when no decision was audited yet. Errors with msg: NOTFOUND (the
 * data dir is not initialised), CORRUPT (a damaged queue), others. */
POSGATE_WUR enum posgate_err
posgate_cli_audit_open(const char *data_dir, struct posgate_cli_audit **out, char *msg, size_t cap);
void posgate_cli_audit_close(struct posgate_cli_audit *a);

/* One stored event: its canonical JSON text (body, len bytes, not NUL-terminated, valid during
 * the call). Nonzero stops the walk. */
typedef int (*posgate_cli_audit_fn)(void *ctx, uint64_t seq, const char *body, size_t len);

/* Calls fn for each event with a seq above since, oldest first. Errors: reading failed. */
POSGATE_WUR enum posgate_err posgate_cli_audit_each(struct posgate_cli_audit *a, uint64_t since,
                                                    posgate_cli_audit_fn fn, void *ctx);

/* The columns of `posgate audit list` read from an event's text. PARSE with msg for a text that
 * is not a canonical event. */
struct posgate_cli_audit_row {
    char kind[16]; /* "decision" or "allow_summary" */
    char decision[8];
    char time[32];
    char service[65];
    char operator_id[129];
    char listings[256]; /* "list/listing_id ..." or "count N" */
};
POSGATE_WUR enum posgate_err posgate_cli_audit_row(const char *body, size_t len,
                                                   struct posgate_cli_audit_row *row, char *msg,
                                                   size_t cap);

/* `posgate audit verify`: recomputes the hash chain from the oldest kept event. *events: the
 * events checked; *first_seq, *head_seq, *acked_seq: the queue's figures (0 when unknown).
 * Errors with msg (or ""): CORRUPT (an event edited, removed or reordered), others. */
POSGATE_WUR enum posgate_err posgate_cli_audit_verify(struct posgate_cli_audit *a, uint64_t *events,
                                                      uint64_t *first_seq, uint64_t *head_seq,
                                                      uint64_t *acked_seq, char *msg, size_t cap);

/* `posgate device-key`: the device's id and its public key's PEM text (appended to pem).
 * Errors with msg: NOTFOUND (no device key: posgate init makes it), INVALID (a damaged key),
 * others. */
POSGATE_WUR enum posgate_err posgate_cli_device_key(const char *data_dir,
                                                    char id[POSGATE_CLI_DEVICE_ID_LEN + 1],
                                                    struct buf *pem, char *msg, size_t cap);

/* `posgate field-sync STICK` (docs/audit.md, "Field sync"), in four steps: */

/* Step 1 chooses the bundle to import (then posgate_cli_source_path and posgate_cli_update):
 * the newest of STICK/ *.bundle, by the timestamp version each claims (untrusted: it only picks
 * which one to verify; a tie goes to the later name), into path; "" when there is none. Errors:
 * the stick cannot be listed. */
POSGATE_WUR enum posgate_err posgate_cli_stick_bundle(const char *stick,
                                                      char path[POSGATE_CLI_PATH_MAX]);

/* Steps 2 and 3 on an open kiosk: reads the collector's acknowledgement from the kiosk's folder
 * on the stick (STICK/posgate/DEVICE_ID/ack.json), forgets what it holds, then writes every
 * event not acknowledged as signed batches into that folder, exactly as the uploader posts
 * them, and removes the batch files the collector holds. What happened, in order: */
struct posgate_cli_exchange {
    char dir[POSGATE_CLI_PATH_MAX]; /* the kiosk's folder on the stick */
    enum posgate_err setup;         /* the folder or the queue's figures failed: nothing was done */
    uint64_t acked_was, acked;      /* acknowledged up to acked (moved from acked_was when above) */
    enum posgate_err ack;           /* OK, NOTFOUND (no ack file), else ignored: ack_msg says why */
    char ack_msg[1024];
    enum posgate_err batches; /* writing the batches failed: no file was removed */
    size_t files;             /* batch files written, holding seqs first_seq..last_seq */
    uint64_t first_seq, last_seq;
    size_t removed;  /* batch files the collector holds, removed */
    int sync_failed; /* the folder could not be synced to the stick */
};
void posgate_cli_stick_exchange(struct posgate *pg, const char *stick,
                                struct posgate_cli_exchange *out);

/* Step 4: writes the kiosk's signed status report into its folder on the stick (path gets the
 * file's name), the sync source being "bundle" with result (the feed step's outcome: "ok",
 * "unchanged", "older", "refused: ..."; "" when the stick held no bundle). */
POSGATE_WUR enum posgate_err posgate_cli_stick_report(struct posgate *pg, const char *stick,
                                                      const char *result,
                                                      char path[POSGATE_CLI_PATH_MAX]);

/* ==== end of the command line's part ====================================================== */



/* ==== posgated ============================================================================ */

/*
 * What posgated (agent/daemon) needs beyond posgate.h: the mechanisms of its sync thread (one
 * sync attempt over the fetcher's carriers, the merge of the store's recent changes after it),
 * of its audit uploader thread (one upload round, the signed device status report, pruning),
 * the status object its HTTP threads read, and the figures /metrics shows. The loops, their
 * schedules, the config and the HTTP API stay in the daemon; the fetcher, the uploader, the
 * update pipeline, the audit queue and the handle's insides stay here (admin_daemon.c).
 *
 * Threads. One struct posgated_core per open handle, made before the daemon's threads start and
 * freed after they all stopped. Each function names the threads that may call it:
 *   - the sync thread (one thread): posgated_sync_run, posgated_sync_merge;
 *   - the uploader thread (one thread): posgated_audit_upload, posgated_audit_send_status,
 *     posgated_audit_prune;
 *   - any thread, at any time: every other function (but posgated_core_new and _free).
 * Reads of the handle's own store connection (the status object, the installed version, the
 * device report) are serialised inside, so HTTP threads, the sync thread and the uploader thread
 * may ask at once (posgate_status_json on the same handle from several threads is not safe:
 * use posgated_status_json). Nothing here calls into the daemon except keep_going, and no lock
 * taken inside is held on return: the daemon may call the "any thread" functions with its own
 * locks held.
 */
#include <stdint.h>
#include <stdio.h>

struct buf;
struct posgated_core;

#define POSGATED_ERRMSG_MAX 512
#define POSGATED_IDS_MAX    8 /* identifiers per request (posgate_request_add_id) */

/* The daemon's machinery around pg (borrowed: it must outlive *out). NOMEM. */
POSGATE_WUR enum posgate_err posgated_core_new(struct posgate *pg, struct posgated_core **out);
/* Frees the fetcher and the uploader; NULL is a no-op. Only after every thread using c ended. */
void posgated_core_free(struct posgated_core *c);

/* posgate_status_json of the handle (the object of `posgate status --json`), serialised with
 * every other reader of the handle's store connection; *out is freed with posgate_free. Any
 * thread. */
POSGATE_WUR enum posgate_err posgated_status_json(struct posgated_core *c, char **out);

/* What a request holds, for the HTTP API's privilege rule and the fuzz targets' invariants.
 * The strings are rq's ("" when not set), valid until rq is changed or freed. */
struct posgated_request_view {
    const char *service;
    size_t n_ids; /* 0 .. POSGATED_IDS_MAX */
    const char *operator_id;
    int has_at;
    int has_override; /* a supervisor override (posgate_request_set_override) */
    const char *override_by, *override_reason;
};
void posgated_request_view(const struct posgate_request *rq, struct posgated_request_view *out);
/* 1 when a and b hold the same request byte for byte, identifiers included (each filled from a
 * reset request): the tests' and fuzz targets' check that two readers of a body fill it alike. */
int posgated_request_same(const struct posgate_request *a, const struct posgate_request *b);

/* The wait in seconds before a loop's next attempt after a failure: full jitter (uniform from
 * the CSPRNG) in [0, min(8 intervals, interval_s * 2^fails)], fails counting the failures
 * before this one, then at least 1 and at least retry_after_s (a Retry-After still running).
 * Any thread. */
uint64_t posgated_backoff_s(unsigned fails, uint64_t interval_s, uint64_t retry_after_s);

/* `posgated --version`: "posgated VERSION", then the run-time version of each library the
 * core runs on (mbedTLS, SQLite, libcurl, cJSON, utf8proc), one per line, then extra verbatim
 * (NULL: none; the daemon's own libraries). */
void posgated_version_print(FILE *out, const char *extra);

/* ---- the sync thread ---- */

enum posgated_sync_kind {
    POSGATED_SYNC_OK,
    POSGATED_SYNC_NETWORK,  /* no mirror delivered */
    POSGATED_SYNC_REJECTED, /* the verifier refused the feed */
    POSGATED_SYNC_STORE,    /* the local store failed */
    POSGATED_SYNC_CONFIG,   /* no feed URL, or no fetcher could be made from the options */
    POSGATED_SYNC_DISK      /* the data directory's file system is full */
};

/* One attempt's options: the config as it is when the attempt starts (borrowed for the call;
 * NULL or "" for an absent path or proxy). */
struct posgated_sync_options {
    const char *data_dir;
    const char *const *feed_urls; /* the mirrors' base URLs, in the order they are tried */
    size_t n_feed_urls;           /* 0: the attempt fails with CONFIG at once */
    const char *ca_file, *client_cert, *client_key, *proxy;
    uint64_t max_recv_bytes_per_s; /* 0: unlimited */
};

struct posgated_sync_outcome {
    enum posgated_sync_kind kind;
    int64_t feed_version;   /* installed after the attempt (a failure leaves the last good one) */
    int changed;            /* list data changed */
    uint64_t retry_after_s; /* a failure: until a mirror's Retry-After ends (0: none running) */
    char error[POSGATED_ERRMSG_MAX]; /* a failure: "NAME: why" ("" on OK) */
};

/* The fetch options changed when options_changed is 1: the next posgated_sync_run makes a new
 * fetcher from its options (the old one's counters are kept for /metrics). Returns 1 while a
 * new fetcher is due: asked for, now or before, and not yet made by a run, or the last run
 * could not make one. Any thread. */
int posgated_sync_renew_fetcher(struct posgated_core *c, int options_changed);

/* One sync attempt with opt: the TUF update (update_run) from the mirrors through the fetcher,
 * waiting at most a second for another update of the data dir (the next attempt tries again),
 * the store's recent changes left for posgated_sync_merge; after a success the spool's stale
 * partial downloads are removed and the handle's idle store readers renewed, so that the next
 * check answers from the new version. *out (reset first) classifies what happened. The sync
 * thread only; blocks for the network and the disk (posgated_sync_cancel ends it early). */
void posgated_sync_run(struct posgated_core *c, const struct posgated_sync_options *opt,
                       struct posgated_sync_outcome *out);

/* Merges the store's recent changes into its main table (update_compact), a transaction per
 * chunk, asking keep_going(ctx) between chunks (0 stops; the rest waits for the next merge);
 * rebuilds the key filter when the installed version has none usable. Logs what it did, or
 * why it failed. The sync thread only, between attempts; checks go on meanwhile. */
POSGATE_WUR enum posgate_err posgated_sync_merge(struct posgated_core *c, const char *data_dir,
                                                 int (*keep_going)(void *ctx), void *ctx);

/* Stops the transfers of the attempt under way, and of every later one, within about a second:
 * the attempt fails and installs nothing. For the stop: any thread. */
void posgated_sync_cancel(struct posgated_core *c);

/* Appends the fetcher's metric families (Prometheus text 0.0.4): posgate_fetch_bytes_total,
 * posgate_fetch_requests_total{result}, posgate_fetch_failures_total{kind}, summed over every
 * fetcher made. Any thread. */
POSGATE_WUR enum posgate_err posgated_sync_metrics(struct posgated_core *c, struct buf *out);

/* ---- the audit uploader thread ---- */

enum posgated_upload_kind {
    POSGATED_UPLOAD_OK,
    POSGATED_UPLOAD_NETWORK,
    POSGATED_UPLOAD_TLS,
    POSGATED_UPLOAD_TIMEOUT,
    POSGATED_UPLOAD_THROTTLED,   /* 429 / 503: wait retry_after_s */
    POSGATED_UPLOAD_SERVER,      /* another 5xx */
    POSGATED_UPLOAD_REFUSED,     /* another 4xx */
    POSGATED_UPLOAD_CHAIN_BREAK, /* the collector found the chain broken: stop uploading */
    POSGATED_UPLOAD_PROTOCOL,    /* an answer that cannot be used, or a local failure */
    POSGATED_UPLOAD__COUNT
};

/* The uploader's options (borrowed for the call; NULL or "" for an absent path or proxy). */
struct posgated_audit_options {
    const char *url; /* the collector's POST /v1/audit URL */
    const char *ca_file, *client_cert, *client_key, *proxy;
    size_t batch_max; /* events per batch */
};

struct posgated_upload_result {
    enum posgated_upload_kind kind;
    const char *kind_name;  /* "ok", "network", "tls", "timeout", "throttled", "server",
                               "refused", "chain_break", "protocol" (static) */
    long http_status;       /* the collector's answer; 0: none (nothing sent, or no answer) */
    uint64_t retry_after_s; /* THROTTLED: the Retry-After given (0: none); else 0 */
    char error[POSGATED_ERRMSG_MAX]; /* "" on OK */
};

/* Makes a new uploader at the next use (the upload options changed). Any thread. */
void posgated_audit_renew_uploader(struct posgated_core *c);

/* One upload round: up to batch_max events after the collector's acknowledged seq, signed,
 * POSTed gzip-compressed, and the seq it acknowledges recorded (which may prune). An empty
 * queue is OK with http_status 0. Returns 1 when more events wait (upload again at once), 0
 * otherwise. A failure's kind is counted for posgated_audit_metrics; the answer's Date, if any,
 * sets the clock offset the status report gives. The uploader thread only; blocks. */
int posgated_audit_upload(struct posgated_core *c, const struct posgated_audit_options *opt,
                          struct posgated_upload_result *res);

/* Sends the signed device status report (docs/collector.md, "Device status") to the
 * collector's device-status URL beside opt->url, with the last sync attempt (sync_at wall
 * seconds, 0: none yet; sync_error "" when it succeeded) and the clock offset against the
 * collector's last Date. Nothing when no uploader can be made; a failure is logged. The uploader
 * thread only; blocks. */
void posgated_audit_send_status(struct posgated_core *c, const struct posgated_audit_options *opt,
                                int64_t sync_at, const char *sync_error);

/* Deletes acknowledged events past the retention period, at most once a minute (the first call
 * always). The uploader thread only. */
void posgated_audit_prune(struct posgated_core *c);

/* The queue's figures: events stored and not yet acknowledged, and the highest seq the
 * collector acknowledged. Read now; when the queue cannot be read, the last figures read
 * (0 before any). Any thread. */
struct posgated_audit_queue {
    uint64_t queued;
    uint64_t acked_seq;
};
void posgated_audit_queue(struct posgated_core *c, struct posgated_audit_queue *out);

/* Appends the uploader's and the queue's metric families (Prometheus text 0.0.4):
 * posgate_audit_queued, _acked_seq, _upload_stopped (stopped: the daemon's chain-break state),
 * _uploaded_total, _upload_failures_total{kind}, then posgate_disk_full and
 * posgate_audit_reserve_bytes when the queue can be read. Any thread. */
POSGATE_WUR enum posgate_err posgated_audit_metrics(struct posgated_core *c, int stopped,
                                                    struct buf *out);

/* ==== end of posgated's part ============================================================== */

#endif
