/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The insides of the TUF writer (tuf_writer.h), shared by its files; private to sync/tuf/ (and
 * its unit tests):
 *
 *   +----------------------+---------------------------------------------------------------+
 *   | tuf_writer.c         | roles in memory, small helpers, lifecycle, settings, signing  |
 *   | tuf_writer_root.c    | keys and keyids, tuf_writer_create, top-level role keys, root |
 *   |                      | fields, key lists                                             |
 *   | tuf_writer_targets.c | delegations, targets and their stored content                 |
 *   | tuf_writer_publish.c | snapshot, timestamp, tuf_writer_publish and the repository    |
 *   | tuf_writer_io.c      | the state on disk (open, save), tuf_writer_sign_file, export  |
 *   |                      | and import of signed metadata                                 |
 *   | tuf_writer_handover.c| a delegated role signed by its authority elsewhere (accept)   |
 *   +----------------------+---------------------------------------------------------------+
 *
 * Every role is held as its last signed file (bytes and parsed envelope) plus an unsigned
 * working copy of its "signed" body; a change edits the working copy and marks the role dirty,
 * and signing turns the working copy into the next version. Signatures cover the canonical JSON
 * of "signed" (json_canon.h). The files themselves (metadata and writer.json) are not canonical
 * JSON: cJSON writes them as ordinary compact JSON (members in the order they were built,
 * control characters escaped) so that strict JSON readers accept them, and a reader verifies the
 * signatures over the canonical JSON it computes again from the parsed "signed".
 *
 * Functions and data shared between the files carry the prefix tw_; a failure that leaves the
 * state half-changed in memory sets w->failed, after which only tuf_writer_free is allowed.
 */
#ifndef POSGATE_TUF_WRITER_INTERNAL_H
#define POSGATE_TUF_WRITER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "crypto.h"
#include "posgate_err.h"
#include "tuf_writer.h"

#define SPEC_VERSION   "1.0.31"
#define META_MAX       (16u * 1024u * 1024u) /* bytes of one metadata file */
#define STATE_JSON_MAX (64u * 1024u * 1024u) /* writer.json holds working copies */
#define NAME_MAX_LEN   1024                  /* bytes of a target name */
#define PATH_CAP       4096
#define COPY_CHUNK     65536
#define ROLE_COUNT_MAX 4096
#define WRITER_FORMAT  1
#define KEYTYPE        "ecdsa"
#define SCHEME         "ecdsa-sha2-nistp256"
#define KEYTYPE_RSA    "rsa"
#define SCHEME_RSA     "rsassa-pss-sha256"

/* "root", "timestamp", "snapshot", "targets", in that order. */
extern const char *const tw_top_roles[4];

struct role {
    char name[TUF_WRITER_ROLE_MAX + 1];
    struct buf signed_bytes; /* last signed file, exactly as written; len 0 when never */
    cJSON *signed_env;       /* parsed signed_bytes; NULL when never signed */
    int64_t signed_version;  /* 0 when never signed */
    cJSON *work;             /* working "signed" body; NULL for timestamp/snapshot until built
                                (or loaded from their signed file) */
    int dirty;               /* work differs from what was signed, or a re-sign was asked */
    int signed_changed;      /* signed_bytes not yet saved */
    int64_t next_version;    /* 0: signed_version + 1 */
    int has_next_expires;
    int64_t next_expires;
    int64_t lifetime;                      /* 0: the default */
    struct crypto_privkey *const *signers; /* test knob; NULL: keyring */
    size_t signer_count;
    int has_signers;
};

struct tuf_writer {
    char dir[PATH_CAP];
    struct role *roles;
    size_t nroles;
    size_t cap;
    int64_t now;
    int snapshot_hashes;
    int failed;     /* an operation failed half-way in memory: only free is allowed */
    char **unlinks; /* files to remove after the next save */
    size_t nunlinks;
    char errmsg[TUF_WRITER_ERRMSG_MAX];
};

/* Keyring keys with their keyids, computed once per call. */
struct keyring {
    struct crypto_privkey *const *keys;
    size_t count;
    char (*ids)[TUF_WRITER_KEYID_LEN + 1];
};

/* A set of keyids whose threshold a signing must meet. */
struct keyset {
    const cJSON *keyids;
    int64_t threshold;
    const char *what;
};

/* ---- tuf_writer.c: roles, helpers, lifecycle, settings, signing ------------------------- */

/* Sets w's message (printf) and returns err; OK leaves the message as it is. */
enum posgate_err tw_fail(struct tuf_writer *w, enum posgate_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int tw_is_top(const char *name);
/* Targets-type roles: "targets" and every delegated role. */
int tw_is_targets_type(const char *name);
/* A delegated role name: 1 to TUF_WRITER_ROLE_MAX bytes of [A-Za-z0-9._-], not a top-level name,
 * not starting with '.'. */
int tw_valid_role_name(const char *name);
struct role *tw_find_role(const struct tuf_writer *w, const char *name);
int64_t tw_writer_now(const struct tuf_writer *w);
int64_t tw_default_lifetime(const struct tuf_writer *w, const struct role *r);

/* Sets key in obj to v (taking v, also on failure), replacing an existing member. */
enum posgate_err tw_obj_set(cJSON *obj, const char *key, cJSON *v);
enum posgate_err tw_obj_set_int(cJSON *obj, const char *key, int64_t v);
enum posgate_err tw_obj_set_str(cJSON *obj, const char *key, const char *v);
/* Appends v to arr (taking v, also on failure). */
enum posgate_err tw_arr_add(cJSON *arr, cJSON *v);
int tw_str_in_array(const cJSON *arr, const char *s);
/* Ordinary (not canonical) compact JSON text of v, control characters escaped, appended to out. */
enum posgate_err tw_print_json(const cJSON *v, struct buf *out);

/* A body of the given _type with spec_version, version 0 and an expiry of the epoch. */
cJSON *tw_new_body(const char *type);
/* A targets body listing no targets. */
cJSON *tw_new_targets_body(void);
/* Appends a role (may move w->roles: pointers to roles go stale). */
enum posgate_err tw_add_role(struct tuf_writer *w, const char *name, struct role **out);
void tw_role_cleanup(struct role *r);
/* out = the state directory joined with the printf'd relative path. */
enum posgate_err tw_state_path(const struct tuf_writer *w, char *out, size_t cap, const char *fmt,
                               ...) __attribute__((format(printf, 4, 5)));
enum posgate_err tw_writer_alloc(const char *state_dir, struct tuf_writer **out);
/* Copies w's message (or err's text) into errmsg for the functions that return no writer. */
void tw_copy_err(const struct tuf_writer *w, enum posgate_err err, char *errmsg, size_t errcap);
/* The start of every operation on w: refuses a failed writer, clears the message and finds the
 * role (when out is not NULL). */
enum posgate_err tw_usable(struct tuf_writer *w, const char *role, struct role **out);

/* The key sets whose thresholds a signing of r must meet (root: new and old). */
enum posgate_err tw_role_keysets(struct tuf_writer *w, const struct role *r, const cJSON *body,
                                 struct keyset sets[2], size_t *n);
/* Signs body with each key (appending to sigs, which it takes) and builds the envelope and its
 * file bytes (ordinary JSON, tw_print_json). */
enum posgate_err tw_make_envelope(const cJSON *body, cJSON *sigs,
                                  struct crypto_privkey *const *keys, size_t n, cJSON **env_out,
                                  struct buf *bytes);
/* Signs r's working body as its next version (or only checks that it could: check_only). */
enum posgate_err tw_sign_one(struct tuf_writer *w, struct role *r, const struct keyring *kr,
                             int check_only);
/* The keyids of a keyring (kr->ids: plat_free it, also on failure). */
enum posgate_err tw_keyring_init(struct tuf_writer *w, struct keyring *kr,
                                 struct crypto_privkey *const *keys, size_t count);

/* ---- tuf_writer_root.c: keys ------------------------------------------------------------- */

/* Checks a key set and adds its keys to keys_obj; *keyids_out gets the keyids in order. */
enum posgate_err tw_build_keyset(struct tuf_writer *w, const char *what,
                                 const struct tuf_writer_role_keys *k, cJSON *keys_obj,
                                 cJSON **keyids_out);
/* Drops the keys of keys_obj that no role in roles uses. */
void tw_prune_keys(cJSON *keys_obj, const cJSON *roles);

/* ---- tuf_writer_targets.c: delegations and targets --------------------------------------- */

/* Splits a target name into directory ("" when none) and base name. */
void tw_split_name(const char *name, char *dir, size_t dcap, const char **base);
/* "<dir>/<sha>.<base>" or "<sha>.<base>": the consistent name of a target. */
enum posgate_err tw_consistent_name(const char *name, const char *sha_hex, char *out, size_t cap);
/* The delegation entry for name in any targets-type role's working copy, and its delegator. */
cJSON *tw_find_delegation(const struct tuf_writer *w, const char *name, struct role **delegator);
/* A delegated role that no delegation points at any more (see tuf_writer_undelegate). */
int tw_is_retired(const struct tuf_writer *w, const struct role *r);

/* ---- tuf_writer_io.c: the state on disk -------------------------------------------------- */

/* Writes the changed signed files, then writer.json, then removes the queued files. */
enum posgate_err tw_save_state(struct tuf_writer *w);

#endif
