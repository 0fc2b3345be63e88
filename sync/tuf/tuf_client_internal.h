/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The insides of the TUF client (tuf_client.h), shared by its two files; private to sync/tuf/
 * (and its unit tests):
 *
 *   +--------------------+------------------------------------------------------------------+
 *   | tuf_client.c       | trusted files, the update workflow (root chain, timestamp,       |
 *   |                    | snapshot, targets), loading a targets role, downloads, state     |
 *   | tuf_client_deleg.c | the delegation walks: find_target and foreach_target             |
 *   +--------------------+------------------------------------------------------------------+
 *
 * Functions shared between the files carry the prefix tc_.
 */
#ifndef POSGATE_TUF_CLIENT_INTERNAL_H
#define POSGATE_TUF_CLIENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "posgate_err.h"
#include "tuf_client.h"
#include "tuf_meta.h"

/* A delegated targets role verified during this session. */
struct deleg_entry {
    char *name;
    struct tuf_meta *meta;
};

struct tuf_client {
    struct tuf_client_options opt;
    char dir[4096];
    char errmsg[TUF_CLIENT_ERRMSG_MAX];
    struct tuf_meta *root;
    struct tuf_meta *timestamp;
    struct tuf_meta *snapshot;
    struct tuf_meta *targets;
    struct deleg_entry *deleg;
    size_t ndeleg, capdeleg;
    int refreshed; /* the last refresh succeeded: lookups allowed */
    int expired;   /* accept_expired let expired metadata through */
};

/* ---- tuf_client.c ---- */

/* Sets c's message (printf) and returns err. */
enum posgate_err tc_seterr(struct tuf_client *c, enum posgate_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Verifies m against a role's keys; BADSIG with "<what> has 1 valid signature of threshold 2
 * <by>" otherwise. */
enum posgate_err tc_verify_role(struct tuf_client *c, const struct tuf_meta *m,
                                const struct tuf_key *keys, size_t nkeys,
                                const struct tuf_role_keys *role, const char *what, const char *by);
/* A targets role (top-level or delegated) verified with the given keys, as snapshot lists it:
 * the trusted local file when still good, else fetched, checked and persisted. *out is the
 * caller's. */
enum posgate_err tc_load_targets_role(struct tuf_client *c, const char *role,
                                      const struct tuf_key *keys, size_t nkeys,
                                      const struct tuf_role_keys *rk, const char *by,
                                      struct tuf_meta **out);

/* ---- tuf_client_deleg.c ---- */

/* The delegated role of that name verified in this session; NULL when none. */
struct deleg_entry *tc_find_deleg(struct tuf_client *c, const char *name);

#endif
