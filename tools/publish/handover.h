/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The handover: the one file an issuing authority gives the feed operator so that the operator
 * publishes the authority's list without ever holding its key. The authority builds it on its
 * own machine (posgate-publish authority-sign, publish_authority.c) and the operator verifies and
 * installs it (posgate-publish accept, publish_accept.c). Nothing in it is trusted for being
 * there: the manifest and the role are checked against the delegation the operator's state
 * records (signatures, threshold, paths, versions), every target against the role's length and
 * sha256.
 *
 * A handover is a bundle (bundle.h: header, sorted index, bodies; validated before anything is
 * read) with exactly these members:
 *
 *   +------------------------+------------------------------------------------------------+
 *   | handover.json          | the manifest, signed by the authority's keys like a TUF     |
 *   |                        | file (signatures over the canonical JSON of "signed"):     |
 *   |                        | {"signatures": [{"keyid": HEX, "sig": HEX}, ...],          |
 *   |                        |  "signed": {"_type": "posgate-handover", "format": 1,      |
 *   |                        |   "feed_id": ID, "list": LIST, "role": "list-LIST",        |
 *   |                        |   "base_version": N,  the role version it was built on     |
 *   |                        |   "base_sha256": HEX, of that role's file ("" when N is 0:   |
 *   |                        |                       the feed did not delegate the list)   |
 *   |                        |   "version": N + 1,  the version of role.json              |
 *   |                        |   "role_sha256": HEX, of role.json                         |
 *   |                        |   "created": RFC 3339}}                                    |
 *   | role.json              | the delegated targets role, version N + 1, signed by the    |
 *   |                        | authority's keys, byte for byte as it is published          |
 *   | targets/<target name>  | the content of each target role.json lists that its base    |
 *   |                        | did not (the list's new snapshot and delta, a new           |
 *   |                        | lists/LIST/config.json); targets it kept are not carried    |
 *   +------------------------+------------------------------------------------------------+
 *   caps: handover.json HANDOVER_MANIFEST_MAX bytes, role.json TUF_META_MAX_LEN bytes; a
 *   member of any other name is refused.
 *
 * The custom metadata of a list's targets (publish_list.c writes it, kiosks read it) is parsed
 * here too (list_target_parse), for both sides' checks.
 */
#ifndef POSGATE_HANDOVER_H
#define POSGATE_HANDOVER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "crypto.h"
#include "posgate_err.h"

#define HANDOVER_FORMAT       1
#define HANDOVER_TYPE         "posgate-handover"
#define HANDOVER_MANIFEST     "handover.json"
#define HANDOVER_ROLE         "role.json"
#define HANDOVER_TARGETS      "targets/"
#define HANDOVER_MANIFEST_MAX (64u << 10)
#define HANDOVER_ERRMSG_MAX   512
#define HANDOVER_ID_MAX       64 /* feed_id, list id and role name bytes */

struct handover_manifest {
    char feed_id[HANDOVER_ID_MAX + 1];
    char list[HANDOVER_ID_MAX + 1];
    char role[HANDOVER_ID_MAX + 1];
    int64_t base_version;
    char base_sha256[2 * CRYPTO_SHA256_LEN + 1]; /* "" when base_version is 0 */
    int64_t version;                             /* base_version + 1 */
    char role_sha256[2 * CRYPTO_SHA256_LEN + 1];
    int64_t created;
};

struct handover;

/* Opens a handover file and checks its form: a valid bundle, the members above and no other,
 * the manifest's fields (types, format, versions, hex digests), role.json's sha256 against the
 * manifest. PARSE/INVALID/TOOBIG/UNSUPPORTED with the reason in errmsg; NOTFOUND, IO. Signatures
 * are not checked here (the operator's delegation is needed: handover_count_signatures). */
POSGATE_WUR enum posgate_err handover_open(const char *path, struct handover **out, char *errmsg,
                                           size_t errcap);
/* The same over bytes in memory (copied), for tests and fuzzing. */
POSGATE_WUR enum posgate_err handover_open_mem(const void *data, size_t len, struct handover **out,
                                               char *errmsg, size_t errcap);
void handover_free(struct handover *h); /* NULL is a no-op */

const struct handover_manifest *handover_manifest(const struct handover *h);
/* handover.json and role.json as carried (borrowed from h). */
const struct buf *handover_manifest_bytes(const struct handover *h);
const struct buf *handover_role_bytes(const struct handover *h);
/* The targets carried: count, and the target name of the i-th (NULL past the count). */
size_t handover_target_count(const struct handover *h);
const char *handover_target_name(const struct handover *h, size_t i);
/* 1 when the handover carries the content of target name. */
int handover_carries(const struct handover *h, const char *name);
/* Copies the carried content of target name to dest (created 0600, atomically), hashing it as it
 * goes: *length and sha256 get what was copied. NOTFOUND when not carried. */
POSGATE_WUR enum posgate_err handover_extract(const struct handover *h, const char *name,
                                              const char *dest, uint64_t *length,
                                              uint8_t sha256[CRYPTO_SHA256_LEN], char *errmsg,
                                              size_t errcap);

/*
 * Counts the distinct keys among pems[0 .. n) (PEM public keys; a key listed twice counts once)
 * with a valid signature over the canonical JSON of "signed" in the envelope env (a TUF-style
 * {"signatures": [...], "signed": {...}} file); a key's signature is the first one of its keyid,
 * as tuf_writer_import_signed takes it. PARSE when env is no such envelope; *valid is set
 * otherwise.
 */
POSGATE_WUR enum posgate_err handover_count_signatures(const void *env, size_t len,
                                                       const char *const *pems, size_t n,
                                                       unsigned *valid, char *errmsg,
                                                       size_t errcap);

/* The unsigned manifest {"signatures": [], "signed": {...}} of m, canonical JSON, into out. */
POSGATE_WUR enum posgate_err handover_manifest_json(const struct handover_manifest *m,
                                                    struct buf *out);

/* One target to carry: its name and where its content is now. */
struct handover_file {
    const char *name;
    const char *path;
};

/* Writes the handover atomically to out_path from the signed manifest and role files and the
 * carried targets. */
POSGATE_WUR enum posgate_err handover_write(const char *out_path, const char *manifest_path,
                                            const char *role_path, const struct handover_file *files,
                                            size_t n, char *errmsg, size_t errcap);

/* ---- a list's targets, by their custom metadata ------------------------------------------- */

enum list_target_type { LIST_TARGET_SNAPSHOT, LIST_TARGET_DELTA, LIST_TARGET_CONFIG };

struct list_target {
    enum list_target_type type;
    char list[HANDOVER_ID_MAX + 1];
    uint64_t seq;      /* snapshot and delta */
    uint64_t base_seq; /* delta */
    uint64_t entries;  /* snapshot and delta: the list's entries at seq */
    uint64_t additions, removals; /* delta */
    int ident_format;
    int64_t issued_at;
    char digest[2 * CRYPTO_SHA256_LEN + 1]; /* the list's state digest at seq (hex) */
};

/* Parses a list target's custom JSON ({"type": "snapshot"|"delta"|"list-config", ...} as
 * publish_list.c and publish_config.c write it). PARSE naming the field otherwise. */
POSGATE_WUR enum posgate_err list_target_parse(const char *custom_json, struct list_target *out,
                                               char *errmsg, size_t errcap);

#endif
