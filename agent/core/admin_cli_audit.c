/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The posgate command line's audit reads and device key (posgate_admin.h): `posgate audit list |
 * export | verify` read the queue of a data dir without starting a writer (the daemon may be
 * appending at the same time; WAL lets both proceed), `posgate device-key` prints the public
 * device key for enrolment at the collector.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "audit_event.h"
#include "buf.h"
#include "datadir.h"
#include "device_key.h"
#include "plat_file.h"
#include "plat_mem.h"
#include "posgate_admin.h"

_Static_assert(POSGATE_CLI_DEVICE_ID_LEN == DEVICE_ID_HEX_LEN, "posgate_admin.h: device ids");
_Static_assert(sizeof(((struct posgate_cli_audit_row *)0)->service) ==
                   sizeof(((struct audit_event_info *)0)->service),
               "posgate_admin.h: audit services");
_Static_assert(sizeof(((struct posgate_cli_audit_row *)0)->operator_id) ==
                   sizeof(((struct audit_event_info *)0)->operator_id),
               "posgate_admin.h: audit operators");
_Static_assert(sizeof(((struct posgate_cli_audit_row *)0)->listings) ==
                   sizeof(((struct audit_event_info *)0)->listings),
               "posgate_admin.h: audit listings");

struct posgate_cli_audit {
    struct audit_queue *q;
};

enum posgate_err
posgate_cli_audit_open(const char *data_dir, struct posgate_cli_audit **out, char *msg, size_t cap)
{
    struct datadir dd;
    struct audit_queue *q = NULL;
    enum posgate_err err;

    *out = NULL;
    msg[0] = 0;
    err = datadir_init(&dd, data_dir);
    if (err != POSGATE_OK) {
        snprintf(msg, cap, "data dir path too long");
        return err;
    }
    if (!plat_exists(dd.store)) {
        snprintf(msg, cap, "%s is not initialised (run posgate init first)", dd.root);
        return POSGATE_ERR_NOTFOUND;
    }
    if (!plat_exists(dd.audit_db)) {
        return POSGATE_OK;
    }
    err = audit_open(dd.audit_db, NULL, NULL, AUDIT_READONLY, &q, msg, cap);
    if (err != POSGATE_OK) {
        return err;
    }
    *out = plat_calloc(1, sizeof(**out));
    if (*out == NULL) {
        audit_close(q);
        snprintf(msg, cap, "%s", posgate_strerror(POSGATE_ERR_NOMEM));
        return POSGATE_ERR_NOMEM;
    }
    (*out)->q = q;
    return POSGATE_OK;
}

void
posgate_cli_audit_close(struct posgate_cli_audit *a)
{
    if (a != NULL) {
        audit_close(a->q);
        plat_free(a);
    }
}

struct each_ctx {
    posgate_cli_audit_fn fn;
    void *ctx;
};

static int
each_one(void *ctx, uint64_t seq, const char *body, size_t len, const uint8_t hash[AUDIT_HASH_LEN])
{
    const struct each_ctx *c = ctx;

    (void)hash;
    return c->fn(c->ctx, seq, body, len);
}

enum posgate_err
posgate_cli_audit_each(struct posgate_cli_audit *a, uint64_t since, posgate_cli_audit_fn fn,
                       void *ctx)
{
    struct each_ctx c = {fn, ctx};

    return audit_each(a->q, since, each_one, &c);
}

enum posgate_err
posgate_cli_audit_row(const char *body, size_t len, struct posgate_cli_audit_row *row, char *msg,
                      size_t cap)
{
    struct audit_event_info info;
    enum posgate_err err;

    memset(row, 0, sizeof(*row));
    err = audit_event_inspect(body, len, &info, msg, cap);
    if (err != POSGATE_OK) {
        return err;
    }
    plat_str_copy(row->kind, sizeof(row->kind), info.kind);
    plat_str_copy(row->decision, sizeof(row->decision), info.decision);
    plat_str_copy(row->time, sizeof(row->time), info.time);
    plat_str_copy(row->service, sizeof(row->service), info.service);
    plat_str_copy(row->operator_id, sizeof(row->operator_id), info.operator_id);
    plat_str_copy(row->listings, sizeof(row->listings), info.listings);
    return POSGATE_OK;
}

enum posgate_err
posgate_cli_audit_verify(struct posgate_cli_audit *a, uint64_t *events, uint64_t *first_seq,
                         uint64_t *head_seq, uint64_t *acked_seq, char *msg, size_t cap)
{
    struct audit_stats st;
    enum posgate_err err;

    memset(&st, 0, sizeof(st));
    *events = 0;
    msg[0] = 0;
    err = audit_verify(a->q, events, msg, cap);
    if (audit_stats(a->q, &st) != POSGATE_OK && err == POSGATE_OK) {
        err = POSGATE_ERR_IO;
    }
    *first_seq = st.first_seq;
    *head_seq = st.head_seq;
    *acked_seq = st.acked_seq;
    return err;
}

enum posgate_err
posgate_cli_device_key(const char *data_dir, char id[POSGATE_CLI_DEVICE_ID_LEN + 1],
                       struct buf *pem, char *msg, size_t cap)
{
    struct datadir dd;
    struct device_key *k = NULL;
    enum posgate_err err;

    id[0] = 0;
    msg[0] = 0;
    err = datadir_init(&dd, data_dir);
    if (err != POSGATE_OK) {
        snprintf(msg, cap, "data dir path too long");
        return err;
    }
    err = device_key_load(dd.device_key, dd.device_pub, &k, msg, cap);
    if (err != POSGATE_OK) {
        return err;
    }
    plat_str_copy(id, POSGATE_CLI_DEVICE_ID_LEN + 1, device_key_id(k));
    err = buf_append_str(pem, device_key_pub_pem(k));
    if (err != POSGATE_OK) {
        snprintf(msg, cap, "%s", posgate_strerror(err));
    }
    device_key_free(k);
    return err;
}
