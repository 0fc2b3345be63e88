/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The TUF writer: the publishing side of the trust layer. It creates a TUF 1.0 repository with
 * ECDSA P-256 or RSA keys, rotates root and role keys, delegates path patterns to other keys (so
 * that an issuing authority alone can change its own list), adds and removes targets with
 * `custom` metadata, and writes a consistent-snapshot repository that any TUF client can read.
 * Signing keys are passed in by the caller, so each party signs only the roles it holds keys for.
 *
 * State directory (kept between runs; the publisher tool opens it every time):
 *
 *   +-------------------------------+------------------------------------------------------+
 *   | writer.json                   | lifetimes, options and the unsigned working copy of  |
 *   |                               | every role changed since it was last signed          |
 *   | signed/<role>.json            | the last signed metadata of each role                |
 *   | roots/<N>.root.json           | every root version ever signed (the client's chain)  |
 *   | targets/<dir>/<sha256>.<base> | target content, copied in when added                 |
 *   +-------------------------------+------------------------------------------------------+
 *
 * Repository written by tuf_writer_publish() (consistent snapshots; every file atomic, target
 * files first, then metadata, timestamp.json last, so a reader never sees a timestamp that
 * points at a snapshot not yet written):
 *
 *   +-------------------------------------+---------------------------------------------+
 *   | metadata/<N>.root.json (all N)      | root chain; metadata/root.json = newest     |
 *   | metadata/<V>.targets.json           | top-level targets                           |
 *   | metadata/<V>.<role>.json            | delegated targets roles                     |
 *   | metadata/<V>.snapshot.json          | versions of targets and delegated roles     |
 *   | metadata/timestamp.json             | snapshot version, length and sha256         |
 *   | targets/<dir>/<sha256>.<basename>   | target files under consistent names         |
 *   +-------------------------------------+---------------------------------------------+
 *
 * Key objects are {"keytype":"ecdsa","scheme":"ecdsa-sha2-nistp256","keyval":{"public":PEM}}
 * for ECDSA P-256 keys and {"keytype":"rsa","scheme":"rsassa-pss-sha256",...} for RSA keys
 * (2048 bits or more; signing keys have 2048 to 4096), with the PEM SubjectPublicKeyInfo; the
 * keyid is the hex SHA-256 of the key object's canonical JSON (securesystemslib).
 *
 * Only the signed bytes are canonical JSON: each signature (hex of the DER ECDSA signature, or
 * of the RSA-PSS block) is over the canonical JSON of "signed" (json_canon.h). The files are
 * not: every metadata file {"signatures":[{"keyid","sig"}...],"signed":{...}}, like writer.json,
 * is ordinary compact JSON written by cJSON (members unsorted, in the order cJSON holds them;
 * control characters escaped, so that strict JSON readers accept it). A reader parses the file
 * and verifies the signatures over the canonical JSON it computes again from "signed"; the
 * lengths and hashes in snapshot and timestamp cover a file's bytes as written.
 *
 * Versions: a role gets a new version (version+1, unless tuf_writer_set_version gave one) only
 * when it is signed again: when it changed or was touched, when its expiry, version or signers
 * were set, when its keys changed, or (snapshot) when what it lists changed; the timestamp is
 * signed again at every publish. Delegated role names are limited to
 * [A-Za-z0-9._-] so that file names and URLs need no escaping.
 *
 * Not thread-safe. Test knobs (wrong keys, too few or duplicate signatures, arbitrary versions
 * and expiries) exist for the threat-model tests: tuf_writer_set_signers, tuf_writer_set_version,
 * tuf_writer_set_expires and tuf_writer_sign_file (also the offline signing of threshold signing
 * across machines, below).
 */
#ifndef POSGATE_TUF_WRITER_H
#define POSGATE_TUF_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "crypto.h"
#include "posgate_err.h"

#define TUF_WRITER_ERRMSG_MAX 1024
#define TUF_WRITER_KEYID_LEN  64 /* hex characters; buffers hold one more for the NUL */
#define TUF_WRITER_MAX_KEYS   64 /* keys of one role */
#define TUF_WRITER_ROLE_MAX   64 /* bytes of a delegated role name */
#define TUF_WRITER_CUSTOM_MAX 65536

/* Default lifetimes (seconds) used when a role is signed without an explicit expiry. */
#define TUF_WRITER_ROOT_LIFETIME      (365 * 86400)
#define TUF_WRITER_TARGETS_LIFETIME   (90 * 86400)
#define TUF_WRITER_SNAPSHOT_LIFETIME  (7 * 86400)
#define TUF_WRITER_TIMESTAMP_LIFETIME (1 * 86400)

/* The public keys of one role and how many of them must sign. */
struct tuf_writer_role_keys {
    const char *const *public_pems; /* PEM SubjectPublicKeyInfo (ECDSA P-256 or RSA) */
    size_t count;
    unsigned threshold; /* 1 ..= count */
};

/* The four top-level roles of a new repository. */
struct tuf_writer_init {
    struct tuf_writer_role_keys root;
    struct tuf_writer_role_keys timestamp;
    struct tuf_writer_role_keys snapshot;
    struct tuf_writer_role_keys targets;
};

/* A delegation from delegator ("targets" or a delegated role) to role name. */
struct tuf_writer_delegation {
    const char *delegator;
    const char *name;
    const char *const *paths; /* patterns such as "lists/eu-1/" followed by "*" */
    size_t path_count;
    struct tuf_writer_role_keys keys;
    int terminating;
};

/* One target as a role lists it (tuf_writer_foreach_target). */
struct tuf_writer_target {
    const char *name;
    uint64_t length;
    const char *sha256_hex;
    const char *custom_json; /* canonical JSON of "custom"; NULL when absent */
    const char *stored_path; /* the content in the state directory */
};

struct tuf_writer;

/* The keyid of a PEM public key (out holds TUF_WRITER_KEYID_LEN + 1 bytes); INVALID when the
 * PEM is neither an ECDSA P-256 nor an RSA (2048 bits or more) public key. */
POSGATE_WUR enum posgate_err tuf_writer_keyid_pem(const char *public_pem, char *out);
/* The keyid of a private key's public half. */
POSGATE_WUR enum posgate_err tuf_writer_keyid(const struct crypto_privkey *k, char *out);

/*
 * Creates a new repository state in state_dir (created when missing): root version 1 with the
 * given keys and thresholds, empty top-level targets. Nothing is signed yet; the first
 * tuf_writer_publish signs root 1 and the rest. STATE when state_dir already holds a writer
 * state (never overwritten), INVALID for bad keys or thresholds. errmsg (may be NULL) gets the
 * reason.
 */
POSGATE_WUR enum posgate_err tuf_writer_create(const char *state_dir,
                                               const struct tuf_writer_init *init,
                                               struct tuf_writer **out, char *errmsg,
                                               size_t errcap);
/* Opens an existing state. NOTFOUND when state_dir holds none (writer.json absent; another read
 * failure gives its own error), CORRUPT when damaged, UNSUPPORTED for another state format. */
POSGATE_WUR enum posgate_err tuf_writer_open(const char *state_dir, struct tuf_writer **out,
                                             char *errmsg, size_t errcap);
/* The roles of the state, for reports: count, the name of role i (top-level roles first, then
 * delegated ones; NULL past the count), and the bytes of a role's last signed file exactly as
 * written (borrowed: valid until the writer changes; NOTFOUND when the role was never signed). */
size_t tuf_writer_role_count(const struct tuf_writer *w);
const char *tuf_writer_role_name(const struct tuf_writer *w, size_t i);
POSGATE_WUR enum posgate_err tuf_writer_role_signed(const struct tuf_writer *w, const char *role,
                                                    const void **data, size_t *len);
/* Frees the writer without saving; NULL is a no-op. */
void tuf_writer_free(struct tuf_writer *w);
/* The message of the last failure; "" after success; never NULL. */
const char *tuf_writer_errmsg(const struct tuf_writer *w);

/* The clock used for default expiries (seconds since the epoch; 0: plat_wall_s()). */
void tuf_writer_set_now(struct tuf_writer *w, int64_t now);
/* Default lifetime of a role when signed without an explicit expiry (a delegated role falls
 * back to the "targets" lifetime until given its own). Saved with the state. */
POSGATE_WUR enum posgate_err tuf_writer_set_lifetime(struct tuf_writer *w, const char *role,
                                                     int64_t seconds);
/* When set, snapshot lists length and sha256 of every targets role besides its version. */
void tuf_writer_set_snapshot_hashes(struct tuf_writer *w, int on);

/* Replaces the keys of a top-level role ("root", "timestamp", "snapshot", "targets") in the
 * next root version. A new root is signed by a threshold of the old root keys and of the new. */
POSGATE_WUR enum posgate_err tuf_writer_set_role_keys(struct tuf_writer *w, const char *role,
                                                      const struct tuf_writer_role_keys *keys);
/* Adds or replaces a delegation (keys, paths, terminating) and creates the delegated role with
 * no targets when it is new. */
POSGATE_WUR enum posgate_err tuf_writer_delegate(struct tuf_writer *w,
                                                 const struct tuf_writer_delegation *d);
/* Removes a delegation. A role never signed is dropped; one that was signed stays in the
 * snapshot at its last version (a client refuses a snapshot that stops listing a role), retired:
 * no delegation points at it, it is never signed again and the content of its targets is
 * released. NOTFOUND when the delegator does not delegate to name; STATE when the role still
 * delegates further. */
POSGATE_WUR enum posgate_err tuf_writer_undelegate(struct tuf_writer *w, const char *delegator,
                                                   const char *name);

/*
 * Adds (or replaces) a target in a targets role: streams src_path into the state directory
 * while hashing (never whole in memory), and lists name with its length, sha256 and custom
 * (a JSON object text, or NULL). INVALID for a bad name, bad custom JSON, or a name outside
 * the paths delegated to a delegated role; NOTFOUND when the role or the file is absent.
 */
POSGATE_WUR enum posgate_err tuf_writer_add_target(struct tuf_writer *w, const char *role,
                                                   const char *name, const char *src_path,
                                                   const char *custom_json);
/* Removes a target from a role. NOTFOUND when the role does not list it. */
POSGATE_WUR enum posgate_err tuf_writer_remove_target(struct tuf_writer *w, const char *role,
                                                      const char *name);
/* Calls fn for each target of the role's working copy, in name order; a non-OK return stops. */
POSGATE_WUR enum posgate_err
tuf_writer_foreach_target(struct tuf_writer *w, const char *role,
                          enum posgate_err (*fn)(void *ctx, const struct tuf_writer_target *t),
                          void *ctx);

/* Marks a role to be signed again (version+1) at the next sign/publish. */
POSGATE_WUR enum posgate_err tuf_writer_touch(struct tuf_writer *w, const char *role);
/* The expiry of the role's next signing (marks it to be signed again). Any value, past too. */
POSGATE_WUR enum posgate_err tuf_writer_set_expires(struct tuf_writer *w, const char *role,
                                                    int64_t expires);
/* Test knob: the version of the role's next signing (any, from 1 to 2^53: INVALID otherwise;
 * marks it to be signed). */
POSGATE_WUR enum posgate_err tuf_writer_set_version(struct tuf_writer *w, const char *role,
                                                    int64_t version);
/* Test knob: the role's next signing uses exactly these keys, one signature each (a key given
 * twice signs twice), with no authorisation or threshold check. Marks the role to be signed.
 * The keys are borrowed until that signing. Not saved. */
POSGATE_WUR enum posgate_err tuf_writer_set_signers(struct tuf_writer *w, const char *role,
                                                    struct crypto_privkey *const *keys,
                                                    size_t count);

/* Saves the working state (changes not yet signed) to the state directory. */
POSGATE_WUR enum posgate_err tuf_writer_save(struct tuf_writer *w);

/*
 * Signs one changed targets role (top-level or delegated) or root now with the keys of the
 * keyring that the role authorises (all of them; at least its threshold, BADSIG otherwise
 * naming the role, the threshold and how many keys were found), and saves the state. This is
 * how an authority signs its own list's role before the operator publishes. STATE when the role
 * has no changes to sign.
 */
POSGATE_WUR enum posgate_err tuf_writer_sign_role(struct tuf_writer *w, const char *role,
                                                  struct crypto_privkey *const *keyring,
                                                  size_t count);

/*
 * Signs every changed role with the keyring (as tuf_writer_sign_role; every signing is checked
 * first, so that a missing key changes nothing), then snapshot when what it lists changed (or it
 * was marked, or never signed), then a new timestamp (version+1, or the one set with
 * tuf_writer_set_version), saves the state and writes the repository to out_dir (created when
 * missing). ROLLBACK when out_dir already holds a timestamp of a higher version, unless that
 * version was set with tuf_writer_set_version: nothing is saved or written, and the writer must
 * be opened again. A target file already present with the same name and length
 * is left as it is (its name carries the hash); a metadata file is rewritten only when its bytes
 * differ.
 */
POSGATE_WUR enum posgate_err tuf_writer_publish(struct tuf_writer *w, const char *out_dir,
                                                struct crypto_privkey *const *keyring,
                                                size_t count);

/* Version of the role's last signing (0 when never signed); NOTFOUND for an unknown role. */
POSGATE_WUR enum posgate_err tuf_writer_role_version(const struct tuf_writer *w, const char *role,
                                                     int64_t *version);

/*
 * Replaces the signatures of the metadata file at path with one signature by each key over the
 * canonical JSON of its "signed" (a key given twice signs twice), keeping the existing
 * signatures first when append is set, and rewrites the file atomically (ordinary JSON, as every
 * metadata file). The offline signing of the diagram below, and a test helper. PARSE when the
 * file holds no "signed" object.
 */
POSGATE_WUR enum posgate_err tuf_writer_sign_file(const char *path,
                                                  struct crypto_privkey *const *keys, size_t count,
                                                  int append);

/* ---- threshold signing across machines (issue 18) ------------------------------------------
 *
 *   operator host                     offline host(s)                   operator host
 *   tuf_writer_export_role ──file──►  tuf_writer_sign_file(append) ──►  tuf_writer_import_signed
 *   {"signatures":[],"signed":{..}}   one signature per key             thresholds checked, then
 *                                                                       installed as signed
 */

/* The public keys of a role as the working root (top-level roles) or its delegator names them. */
struct tuf_writer_key_list {
    char *pems[TUF_WRITER_MAX_KEYS];
    size_t count;
    unsigned threshold;
};
void tuf_writer_key_list_cleanup(struct tuf_writer_key_list *l);
/* Fills out (cleanup with tuf_writer_key_list_cleanup). NOTFOUND for an unknown role. */
POSGATE_WUR enum posgate_err tuf_writer_get_role_keys(struct tuf_writer *w, const char *role,
                                                      struct tuf_writer_key_list *out);

/* A field of our own ("x-...") in the root's signed body: its canonical JSON into out, NOTFOUND
 * when absent; set_root_field replaces it (json: a JSON text) and marks root to be signed. */
POSGATE_WUR enum posgate_err tuf_writer_get_root_field(struct tuf_writer *w, const char *field,
                                                       struct buf *out);
POSGATE_WUR enum posgate_err tuf_writer_set_root_field(struct tuf_writer *w, const char *field,
                                                       const char *json);

/* The next version of root or a targets role, unsigned ({"signatures":[],"signed":{...}}, as
 * ordinary JSON), with the given expiry (0: the one set with tuf_writer_set_expires, else now
 * plus the role's lifetime) and without the issue time a publish would add to a delegated role.
 * STATE when the role has no changes to sign. The state is not changed. */
POSGATE_WUR enum posgate_err tuf_writer_export_role(struct tuf_writer *w, const char *role,
                                                    int64_t expires, struct buf *out);

/*
 * Installs a role signed elsewhere as the role's next signed version and saves the state; the
 * file kept is the parsed envelope written again (ordinary JSON, signatures deduplicated), not
 * data as given. The version must be the next one (ROLLBACK otherwise). A targets role's body
 * must equal the state's next version apart from its expiry (REJECTED otherwise; see
 * tuf_writer_export_role). Signatures are counted once per keyid and verified: root needs a
 * threshold of its own (new) root keys and of the last signed root's keys, any other role a
 * threshold of the keys its delegator names (BADSIG, naming the threshold and the count found).
 * Installing a root whose top-level role keys changed marks those roles to be signed again at
 * the next publish.
 */
POSGATE_WUR enum posgate_err tuf_writer_import_signed(struct tuf_writer *w, const char *role,
                                                      const void *data, size_t len);

/* ---- a delegated role signed on its authority's machine (tuf_writer_handover.c) ------------
 *
 * tuf_writer_import_signed for a delegated role its authority signed away from this state
 * (posgate-publish authority-sign): its issue time (TUF_ISSUED_FIELD) is its signer's, like its
 * expiry; everything else must equal the state's next version of the role, and a threshold of
 * the keys its delegator names must have signed. INVALID for a role that is not delegated. When
 * the import is refused the working copy is as it was.
 */
POSGATE_WUR enum posgate_err tuf_writer_import_delegated(struct tuf_writer *w, const char *role,
                                                         const void *data, size_t len);

#endif
