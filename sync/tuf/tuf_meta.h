/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TUF 1.0 metadata: the root, timestamp, snapshot, targets and delegated targets roles parsed
 * (through json_parse_bounded, the one cJSON entry) into typed structs with hard caps on every
 * count and string, and signature verification over the canonical JSON of "signed" exactly as
 * securesystemslib encodes it. Parsing checks shape, types, _type and spec_version; it does not
 * check signatures, versions against trusted ones or expiry: the client workflow does that.
 *
 *   {                                        one metadata file (at most TUF_META_MAX_LEN bytes)
 *     "signatures": [ {"keyid": HEX, "sig": HEX DER or RSA bytes}, ... ]   <= TUF_MAX_SIGS
 *     "signed": {
 *       "_type": "root"|"timestamp"|"snapshot"|"targets",
 *       "spec_version": "1.x[.y]", "version": int >= 1, "expires": "YYYY-MM-DDTHH:MM:SSZ",
 *       root:      "consistent_snapshot": bool, "keys": {KEYID: KEY},
 *                  "roles": {"root"|"timestamp"|"snapshot"|"targets":
 *                            {"keyids": [KEYID], "threshold": int >= 1}}
 *       timestamp: "meta": {"snapshot.json": META}
 *       snapshot:  "meta": {"targets.json": META, "<role>.json": META ...}
 *       targets:   "targets": {PATH: {"length": int, "hashes": HASHES, "custom": any}},
 *                  "delegations": {"keys": {KEYID: KEY},
 *                     "roles": [{"name", "keyids", "threshold", "terminating",
 *                                "paths": [PATTERN] | "path_hash_prefixes": [HEX]}]
 *                     | "succinct_roles": {"keyids", "threshold", "bit_length",
 *                                          "name_prefix"}}
 *       unknown members are ignored (and still signed: they are part of the canonical bytes)
 *     }
 *   }
 *   KEY    = {"keytype": "ecdsa"|"ecdsa-sha2-nistp256"|"rsa", "scheme": ...,
 *             "keyval": {"public": PEM}}     (other types parse but never verify)
 *   META   = {"version": int >= 1, "length"?: int >= 1, "hashes"?: HASHES}
 *   HASHES = {"sha256": HEX, "sha512": HEX}  (other algorithms are kept as "unknown" and make
 *             the hash check fail: a hash we cannot compute is not a hash we checked)
 */
#ifndef POSGATE_TUF_META_H
#define POSGATE_TUF_META_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "crypto.h"
#include "posgate_err.h"

#define TUF_META_MAX_LEN      (16u * 1024u * 1024u) /* one metadata file */
#define TUF_MAX_KEYS          256                   /* keys in one keys object */
#define TUF_MAX_ROLE_KEYIDS   256                   /* keyids of one role */
#define TUF_MAX_SIGS          256                   /* signatures of one file */
#define TUF_MAX_META          100000                /* entries of snapshot meta */
#define TUF_MAX_TARGETS       100000                /* targets of one targets file */
#define TUF_MAX_DELEG_ROLES   4096                  /* roles of one delegations object */
#define TUF_MAX_PATHS         1024                  /* paths or prefixes of one role */
#define TUF_NAME_MAX          1024                  /* role names, target paths, patterns */
/* An extra field of "signed" that posgate's writer puts in every timestamp: the RFC 3339 time it
 * was signed. Other TUF clients ignore it; ours counts data age from it (docs/tuf.md). */
#define TUF_ISSUED_FIELD "x-posgate-issued"
#define TUF_KEYID_MAX         128                   /* keyid characters */
#define TUF_PEM_MAX           16384                 /* one public key */
#define TUF_SIG_HEX_MAX       2048                  /* one signature in hex (RSA-8192 fits) */
#define TUF_CUSTOM_MAX        65536                 /* canonical bytes of one "custom" */
#define TUF_MAX_SUCCINCT_BITS 32
#define TUF_ERRMSG_MAX        512

enum tuf_role_type { TUF_ROLE_ROOT, TUF_ROLE_TIMESTAMP, TUF_ROLE_SNAPSHOT, TUF_ROLE_TARGETS };

struct tuf_key {
    char *keyid;
    char *keytype;
    char *scheme;
    struct crypto_pubkey *pub; /* NULL: unsupported type/scheme or bad PEM; never verifies */
};

/* The keys a role trusts and how many of them must sign. */
struct tuf_role_keys {
    size_t nkeyids;
    char **keyids; /* unique */
    unsigned threshold;
};

struct tuf_sig {
    char *keyid;
    char *sig_hex;
};

struct tuf_hashes {
    int has_sha256;
    uint8_t sha256[CRYPTO_SHA256_LEN];
    int has_sha512;
    uint8_t sha512[CRYPTO_SHA512_LEN];
    char *unknown; /* name of the first algorithm we do not compute (or a value of the wrong
                      length), NULL when none */
    int count;     /* algorithms listed */
};

/* One entry of timestamp or snapshot "meta". */
struct tuf_meta_file {
    char *name; /* "snapshot.json", "targets.json", "<role>.json" */
    int64_t version;
    int has_length;
    uint64_t length;
    struct tuf_hashes hashes; /* count 0 when absent */
};

struct tuf_target {
    char *name;
    uint64_t length;
    struct tuf_hashes hashes;
    char *custom_json; /* canonical JSON, NULL when absent */
};

struct tuf_deleg_role {
    char *name;
    struct tuf_role_keys keys;
    int terminating;
    int has_paths; /* else path_hash_prefixes */
    size_t npaths;
    char **paths; /* patterns or hex prefixes */
};

struct tuf_succinct {
    unsigned bit_length; /* 1..32 */
    char *name_prefix;
    struct tuf_role_keys keys;
};

struct tuf_delegations {
    size_t nkeys;
    struct tuf_key *keys;
    size_t nroles;
    struct tuf_deleg_role *roles;
    int has_succinct;
    struct tuf_succinct succinct;
};

struct tuf_meta {
    enum tuf_role_type type;
    char spec_version[32];
    int64_t version;
    int64_t expires;         /* seconds since the epoch */
    int64_t issued;          /* "x-posgate-issued" (any role; ours: the timestamp), 0: none */
    struct buf signed_canon; /* canonical JSON of "signed": the signed bytes */
    size_t nsigs;
    struct tuf_sig *sigs;

    /* root */
    int consistent_snapshot;
    size_t nkeys;
    struct tuf_key *keys;
    struct tuf_role_keys roles[4]; /* indexed by enum tuf_role_type */

    /* timestamp ("snapshot.json" only) and snapshot */
    size_t nmeta;
    struct tuf_meta_file *meta;

    /* targets and delegated targets */
    size_t ntargets;
    struct tuf_target *targets;
    int has_delegations;
    struct tuf_delegations delegations;
};

/* "root", "timestamp", "snapshot", "targets". */
const char *tuf_role_type_name(enum tuf_role_type t);

/*
 * Parses one metadata file whose "_type" must be expected. PARSE (malformed, wrong type, missing
 * or mistyped field, duplicate keyid or role name), TOOBIG (a cap), UNSUPPORTED (spec_version not
 * 1.x), INVALID (NULL arguments). errmsg receives the reason ("targets: 'length' of target
 * \"a.txt\" is not an integer").
 */
POSGATE_WUR enum posgate_err tuf_meta_parse(const void *data, size_t len,
                                            enum tuf_role_type expected, struct tuf_meta **out,
                                            char *errmsg, size_t errcap);
void tuf_meta_free(struct tuf_meta *m);

/*
 * Counts the distinct keyids of role that signed m validly with a key found in keys[0..nkeys)
 * (a keyid listed twice in signatures counts once; a keyid the role does not list is ignored).
 * OK when the count reaches role->threshold, BADSIG otherwise; *valid (may be NULL) gets the
 * count. INVALID for NULL m or role.
 */
POSGATE_WUR enum posgate_err tuf_meta_verify(const struct tuf_meta *m, const struct tuf_key *keys,
                                             size_t nkeys, const struct tuf_role_keys *role,
                                             unsigned *valid);

/* Lookups; NULL when absent. */
const struct tuf_meta_file *tuf_meta_find_meta(const struct tuf_meta *m, const char *name);
const struct tuf_target *tuf_meta_find_target(const struct tuf_meta *m, const char *name);
const struct tuf_key *tuf_meta_find_key(const struct tuf_key *keys, size_t nkeys,
                                        const char *keyid);

/*
 * Checks data against a length (when has_length) and hashes. OK when they match; BADHASH with
 * a message otherwise, also when the hashes name an algorithm we do not compute; what names the
 * file in the message ("snapshot.json").
 */
POSGATE_WUR enum posgate_err tuf_hashes_check(const struct tuf_hashes *h, const uint8_t *sha256,
                                              const uint8_t *sha512, const char *what, char *errmsg,
                                              size_t errcap);

/* TUF path pattern match: shell-style '*' (not matching '/'), '?', '[...]'; the pattern and the
 * path must have the same number of '/'-separated segments. 1 on match. */
int tuf_path_match(const char *pattern, const char *path);

/* 1 when role r of delegations d is trusted for target path (paths or hash prefixes). */
int tuf_deleg_role_matches(const struct tuf_deleg_role *r, const char *target_path);

/* The succinct hash bin role name for a target path ("<prefix>-<hex bin>"), written to out. */
POSGATE_WUR enum posgate_err tuf_succinct_role_for(const struct tuf_succinct *s,
                                                   const char *target_path, char *out, size_t cap);

#endif
