/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TUF client: the detailed client workflow of the TUF specification 1.0, section 5, over
 * carriers (carrier.h) and the metadata parser (tuf_meta.h). It keeps the trusted metadata in a
 * directory with non-versioned names and replaces each file atomically; any failure leaves the
 * trusted files on disk exactly as they were and records a message that names what was expected
 * and what was found, read with tuf_client_errmsg().
 *
 * Trusted metadata directory (every file written with plat_write_atomic, mode 0644):
 *
 *   +-----------------------------+-----------------------------------------------+
 *   | root.json                   | newest verified root (the trust anchor)       |
 *   | timestamp.json              | newest verified timestamp                     |
 *   | snapshot.json               | newest verified snapshot                      |
 *   | targets.json                | newest verified top-level targets             |
 *   | <role, URL-escaped>.json    | newest verified delegated targets role        |
 *   +-----------------------------+-----------------------------------------------+
 *   (role names are escaped as in a URL path segment: "lists/a" -> "lists%2Fa.json")
 *
 * Remote layout (names passed to the metadata carrier): "<N>.root.json", "timestamp.json",
 * "<V>.snapshot.json" / "snapshot.json", "<V>.<role>.json" / "<role>.json" (role escaped as
 * above; versioned names when root says consistent_snapshot). Target names passed to the
 * targets carrier: "<dir>/<HASH>.<base>" with consistent snapshots (HASH: hex sha256 when the
 * target lists one, else sha512), else the target path as is.
 *
 * Typical use by the agent:
 *
 *   tuf_client_bootstrap(dir, root_bytes, len, err, sizeof err);   (once, at install)
 *   tuf_client_new(&opt, &c);           opt.metadata_dir, opt.metadata, opt.targets
 *   tuf_client_refresh(c);              root chain, timestamp, snapshot, top-level targets
 *   tuf_client_find_target(c, "lists/eu-1/snapshot-42.bin", &info);   walks delegations
 *   tuf_client_download(c, &info, "/var/lib/posgate/incoming/x.bin"); verified before rename
 *   tuf_client_foreach_target(c, "lists/eu-1", fn, ctx);   every target one role signs
 *   tuf_client_free(c);
 *
 * Not thread-safe: one client per thread.
 */
#ifndef POSGATE_TUF_CLIENT_H
#define POSGATE_TUF_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "carrier.h"
#include "crypto.h"
#include "posgate_err.h"

#define TUF_CLIENT_ERRMSG_MAX 1024

/* Defaults of the caps (an option of 0 selects them). */
#define TUF_DEFAULT_MAX_ROOT_ROTATIONS 256     /* new root versions fetched per refresh */
#define TUF_DEFAULT_MAX_DELEGATIONS    32      /* roles visited in one target lookup */
#define TUF_DEFAULT_ROOT_MAX_LEN       524288  /* bytes of one root.json */
#define TUF_DEFAULT_TIMESTAMP_MAX_LEN  16384   /* bytes of timestamp.json */
#define TUF_DEFAULT_SNAPSHOT_MAX_LEN   4194304 /* when timestamp gives no length */
#define TUF_DEFAULT_TARGETS_MAX_LEN    8388608 /* when snapshot gives no length */

struct tuf_client_options {
    const char *metadata_dir; /* trusted metadata (copied); must exist and hold root.json */
    struct carrier *metadata; /* borrowed for the client's life; where metadata comes from */
    struct carrier *targets;  /* borrowed; where targets come from; NULL: no downloads */
    int64_t now;              /* seconds since the epoch for expiry checks; 0: plat_wall_s() */
    unsigned max_root_rotations;
    unsigned max_delegations;
    uint64_t root_max_len;
    uint64_t timestamp_max_len;
    uint64_t snapshot_max_len;
    uint64_t targets_max_len;
    /* A bundle carried for days may hold expired metadata: when set, expiry is not an error
     * (the other checks, rollback included, still apply) and tuf_client_expired() reports it. */
    int accept_expired;
};

struct tuf_client;

/* One target as the trusted metadata describes it. The strings point into the client and stay
 * valid until the next tuf_client_refresh() or tuf_client_free(). */
struct tuf_target_info {
    const char *name; /* target path, e.g. "lists/eu-1/snapshot-42.bin" */
    uint64_t length;
    int has_sha256;
    uint8_t sha256[CRYPTO_SHA256_LEN];
    int has_sha512;
    uint8_t sha512[CRYPTO_SHA512_LEN];
    const char *custom_json; /* canonical JSON of "custom", NULL when absent */
    const char *role;        /* the role whose signed metadata lists the target ("targets",
                                "lists/eu-1", ...) */
};

/*
 * Installs a trusted root into metadata_dir (created when missing) as root.json. The bytes must
 * parse as a TUF root and be signed by a threshold of its own root keys; expiry is not checked
 * (the first refresh rotates past an old root). INVALID for NULLs, PARSE, BADSIG, TOOBIG, IO.
 * errmsg (may be NULL) receives the reason.
 */
POSGATE_WUR enum posgate_err tuf_client_bootstrap(const char *metadata_dir, const void *root,
                                                  size_t len, char *errmsg, size_t errcap);

/*
 * Opens a client on opt->metadata_dir: loads and verifies the trusted root (self-signed by a
 * threshold; NOTFOUND when root.json is absent), then the other trusted files when they verify
 * (they serve as the rollback reference; one that does not verify is ignored, as the spec says).
 * Nothing is fetched. opt is copied; the carriers are borrowed.
 */
POSGATE_WUR enum posgate_err tuf_client_new(const struct tuf_client_options *opt,
                                            struct tuf_client **out);
void tuf_client_free(struct tuf_client *c); /* NULL is a no-op */

/*
 * The update workflow, steps 5.3 to 5.6: the root chain N -> N+1 ... (each new root signed by a
 * threshold of the old and of its own keys, version exactly N+1, at most max_root_rotations;
 * expiry checked on the final root; timestamp and snapshot files deleted when their keys
 * rotate), then timestamp, snapshot and top-level targets with signatures, versions, rollback,
 * expiry, lengths and hashes. Each accepted file is persisted before the next step, as the spec
 * does; a rejected file changes nothing. Delegated roles are fetched lazily by
 * tuf_client_find_target() / tuf_client_foreach_target().
 * Errors: BADSIG, ROLLBACK (also a removed role), EXPIRED, BADHASH, TOOBIG, PARSE,
 * UNSUPPORTED, REJECTED (a version other than the one listed), NOTFOUND (a required file is
 * missing), NETWORK/RETRY/IO (carrier). Each refresh starts again from the files on disk, so
 * refresh may be called again after a failure (or periodically on one client).
 */
POSGATE_WUR enum posgate_err tuf_client_refresh(struct tuf_client *c);

/*
 * Looks a target up after a successful refresh: the top-level targets first, then the
 * delegations in preorder depth-first order (terminating delegations stop the search, path
 * patterns and hash prefixes select roles, each delegated role verified against its delegator's
 * keys and threshold, version and hash against snapshot, visited roles skipped, at most
 * max_delegations roles). NOTFOUND when no trusted role lists the target.
 */
POSGATE_WUR enum posgate_err tuf_client_find_target(struct tuf_client *c, const char *name,
                                                    struct tuf_target_info *out);

/*
 * Calls fn for every target the given role lists ("targets" or a delegated role name), in the
 * metadata's order. A delegated role is fetched and verified as tuf_client_find_target would
 * (it must be reachable from "targets" through delegations; NOTFOUND otherwise). Note that a
 * delegated role may list targets outside the paths delegated to it; fn receives only those the
 * delegation allows. A non-OK return from fn stops the walk and is returned.
 */
POSGATE_WUR enum posgate_err
tuf_client_foreach_target(struct tuf_client *c, const char *role,
                          enum posgate_err (*fn)(void *ctx, const struct tuf_target_info *t),
                          void *ctx);

/*
 * Downloads the target to dest_path: streams at most its length into a temporary file in
 * dest_path's directory while hashing, and renames it into place only when length and every
 * listed hash match (BADHASH otherwise, also for a hash algorithm other than sha256/sha512;
 * TOOBIG past the length; the temporary file is removed). t comes from tuf_client_find_target
 * or tuf_client_foreach_target of this client since its last refresh and serves only as a
 * handle: length and hashes are taken from the trusted metadata (t->role, t->name), never from
 * the caller's copy (STATE when that metadata is not loaded).
 */
POSGATE_WUR enum posgate_err
tuf_client_download(struct tuf_client *c, const struct tuf_target_info *t, const char *dest_path);

/* OK when the file at path has exactly the target's length and hashes; BADHASH when it differs,
 * NOTFOUND when absent (the caching check: no need to download again). */
POSGATE_WUR enum posgate_err
tuf_client_verify_file(struct tuf_client *c, const struct tuf_target_info *t, const char *path);

/* Version and expiry (seconds since the epoch) of a trusted role ("root", "timestamp",
 * "snapshot", "targets" or a loaded delegated role); NOTFOUND when not trusted (yet). */
POSGATE_WUR enum posgate_err tuf_client_role_info(const struct tuf_client *c, const char *role,
                                                  int64_t *version, int64_t *expires);

/* The signed issue time (TUF_ISSUED_FIELD, seconds) of a trusted role; 0 when the role is not
 * trusted or its metadata carries none. */
int64_t tuf_client_role_issued(const struct tuf_client *c, const char *role);

/* 1 when accept_expired let expired metadata through in the last refresh. */
int tuf_client_expired(const struct tuf_client *c);

/* The message of the last failure ("timestamp version 3 is older than trusted version 5");
 * "" after success; never NULL. NULL c gives "". */
const char *tuf_client_errmsg(const struct tuf_client *c);

#endif
