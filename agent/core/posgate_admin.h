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


/* ==== end of posgated's part ============================================================== */

#endif
