/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The collector's batch reader (hub_batch.h): bounded gzip decoding (zlib is included here
 * only) and the batch JSON, each event re-encoded canonically and inspected and hashed by the
 * device side's own codec (agent/audit/audit_event.c).
 */
#include "hub_batch.h"

#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "crypto.h"
#include "hub_text.h"
#include "json_canon.h"
#include "plat_mem.h"

static const char *
get_str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    return cJSON_IsString(v) && v->valuestring != NULL ? v->valuestring : NULL;
}

static enum posgate_err
hex32(const char *s, uint8_t out[AUDIT_HASH_LEN])
{
    struct buf b = BUF_INIT(AUDIT_HASH_LEN);
    enum posgate_err err = POSGATE_ERR_PARSE;

    if (s != NULL && hub_lower_hex(s, 2 * AUDIT_HASH_LEN) &&
        crypto_unhex(s, 2 * AUDIT_HASH_LEN, &b) == POSGATE_OK && b.len == AUDIT_HASH_LEN) {
        memcpy(out, b.data, AUDIT_HASH_LEN);
        err = POSGATE_OK;
    }
    buf_free(&b);
    return err;
}

/* A summary's count against the ALLOWs its span can hold (HUB_SUMMARY_*, hub_batch.h). */
static enum posgate_err
check_summary(const cJSON *item, size_t i, uint64_t seq, uint64_t count, char *errmsg,
              size_t errcap)
{
    int64_t first, last;
    uint64_t span, most;

    if (json_get_int(item, "first_time_us", INT64_MIN / 2, INT64_MAX / 2, &first) != POSGATE_OK ||
        json_get_int(item, "last_time_us", INT64_MIN / 2, INT64_MAX / 2, &last) != POSGATE_OK ||
        last < first) {
        snprintf(errmsg, errcap,
                 "events[%zu] (seq %llu): a summary needs integer first_time_us and "
                 "last_time_us with first <= last",
                 i, (unsigned long long)seq);
        return POSGATE_ERR_PARSE;
    }
    span = (uint64_t)(last - first); /* both within +-2^62: no overflow */
    if (span > HUB_SUMMARY_SPAN_MAX_US) {
        span = HUB_SUMMARY_SPAN_MAX_US;
    }
    most = HUB_SUMMARY_BURST + span * HUB_SUMMARY_PER_US; /* < 2^46 */
    if (count == 0 || count > most) {
        snprintf(errmsg, errcap,
                 "events[%zu] (seq %llu): a summary of %llu ALLOWs over %llu us, expected 1 to "
                 "%llu (%u plus %u per microsecond)",
                 i, (unsigned long long)seq, (unsigned long long)count, (unsigned long long)span,
                 (unsigned long long)most, HUB_SUMMARY_BURST, HUB_SUMMARY_PER_US);
        return POSGATE_ERR_PARSE;
    }
    return POSGATE_OK;
}

/* One event of the batch: canonical text, inspected, hashed. */
static enum posgate_err
read_event(const cJSON *item, size_t i, struct hub_batch *b, struct crypto_hash_stream *sha,
           char *errmsg, size_t errcap)
{
    struct buf canon = BUF_INIT(AUDIT_EVENT_MAX);
    struct audit_event_info info;
    struct hub_event *e = &b->ev[b->n];
    char why[256] = "";
    enum posgate_err err;

    if (!cJSON_IsObject(item)) {
        snprintf(errmsg, errcap, "events[%zu]: expected an object", i);
        err = POSGATE_ERR_PARSE;
        goto out;
    }
    err = json_canon_encode(item, &canon);
    if (err != POSGATE_OK) {
        snprintf(errmsg, errcap, "events[%zu]: cannot be put in canonical form (%s)", i,
                 err == POSGATE_ERR_TOOBIG ? "larger than the 64 KiB an event may take"
                                           : "a non-integer number");
        err = POSGATE_ERR_PARSE;
        goto out;
    }
    /* the canonical text is item's own, so its fields are item's */
    err = audit_event_inspect_tree(item, &info, why, sizeof(why));
    if (err != POSGATE_OK) {
        snprintf(errmsg, errcap, "events[%zu]: not an audit event: %s", i, why);
        err = POSGATE_ERR_PARSE;
        goto out;
    }
    if (strcmp(info.device_id, b->device_id) != 0) {
        snprintf(errmsg, errcap,
                 "events[%zu] (seq %llu): device_id \"%s\", expected the batch's "
                 "\"%s\"",
                 i, (unsigned long long)info.seq, info.device_id, b->device_id);
        err = POSGATE_ERR_PARSE;
        goto out;
    }
    if (b->n > 0 && info.seq <= b->ev[b->n - 1].seq) {
        snprintf(errmsg, errcap, "events[%zu]: seq %llu after seq %llu, expected rising seqs", i,
                 (unsigned long long)info.seq, (unsigned long long)b->ev[b->n - 1].seq);
        err = POSGATE_ERR_PARSE;
        goto out;
    }
    memset(e, 0, sizeof(*e));
    e->seq = info.seq;
    memcpy(e->prev, info.prev, AUDIT_HASH_LEN);
    audit_chain_hash_stream(sha, e->prev, canon.data, canon.len, e->hash);
    snprintf(e->kind, sizeof(e->kind), "%s", info.kind);
    if (strcmp(info.kind, "allow_summary") == 0) {
        snprintf(e->decision, sizeof(e->decision), "summary");
        e->count = info.count;
        err = check_summary(item, i, info.seq, info.count, errmsg, errcap);
        if (err != POSGATE_OK) {
            goto out;
        }
    } else if (strcmp(info.decision, "allow") == 0 || strcmp(info.decision, "deny") == 0 ||
               strcmp(info.decision, "refer") == 0 || strcmp(info.decision, "error") == 0) {
        snprintf(e->decision, sizeof(e->decision), "%s", info.decision);
        e->count = 1;
        if (hub_lower_hex(info.id, 32)) { /* what a contest can ask for (hub_db_decision) */
            memcpy(e->decision_id, info.id, 33);
        }
    } else {
        snprintf(errmsg, errcap,
                 "events[%zu] (seq %llu): decision \"%s\", expected allow, deny, "
                 "refer or error",
                 i, (unsigned long long)info.seq, info.decision);
        err = POSGATE_ERR_PARSE;
        goto out;
    }
    e->text = plat_malloc(canon.len + 1);
    if (e->text == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    memcpy(e->text, canon.data, canon.len);
    e->text[canon.len] = 0;
    e->len = canon.len;
    b->n++;
out:
    buf_free(&canon);
    return err;
}

enum posgate_err
hub_batch_parse(const void *json, size_t len, struct hub_batch **out, char *errmsg, size_t errcap)
{
    cJSON *root = NULL;
    const cJSON *events, *head, *item;
    struct hub_batch *b = NULL;
    struct buf sig = BUF_INIT(HUB_SIG_MAX);
    struct crypto_hash_stream *sha = NULL; /* libcrypto's SHA-256, 3 x mbedTLS on an event */
    const char *s;
    int64_t v;
    size_t n, i = 0;
    enum posgate_err err;

    if (out == NULL) {
        return POSGATE_ERR_INVALID;
    }
    *out = NULL;
    if (json == NULL && len > 0) {
        return POSGATE_ERR_INVALID;
    }
    json_arena_begin(4 * len); /* the tree takes ~3 x the text; deleted below */
    err = json_parse_bounded(json, len, HUB_BATCH_JSON_MAX, &root, errmsg, errcap);
    if (err != POSGATE_OK) {
        err = err == POSGATE_ERR_TOOBIG ? err : POSGATE_ERR_PARSE;
        goto out;
    }
    err = POSGATE_ERR_PARSE;
    if (!cJSON_IsObject(root)) {
        snprintf(errmsg, errcap, "batch: expected a JSON object");
        goto out;
    }
    if (json_get_int(root, "v", 0, INT32_MAX, &v) != POSGATE_OK || v != 1) {
        snprintf(errmsg, errcap, "batch: expected \"v\": 1");
        goto out;
    }
    b = plat_calloc(1, sizeof(*b));
    if (b == NULL) {
        err = POSGATE_ERR_NOMEM;
        goto out;
    }
    s = get_str(root, "device_id");
    if (s == NULL || !hub_lower_hex(s, DEVICE_ID_HEX_LEN)) {
        snprintf(errmsg, errcap, "batch: expected \"device_id\" of %d lowercase hex digits",
                 DEVICE_ID_HEX_LEN);
        goto out;
    }
    memcpy(b->device_id, s, DEVICE_ID_HEX_LEN + 1);
    s = get_str(root, "signature");
    if (s == NULL || strlen(s) == 0 || strlen(s) > 2 * HUB_SIG_MAX ||
        crypto_unhex(s, strlen(s), &sig) != POSGATE_OK) {
        snprintf(errmsg, errcap, "batch: expected \"signature\" as hex DER of at most %d bytes",
                 HUB_SIG_MAX);
        goto out;
    }
    memcpy(b->sig, sig.data, sig.len);
    b->sig_len = sig.len;
    item = cJSON_GetObjectItemCaseSensitive(root, "idempotency_key");
    if (item != NULL) {
        s = get_str(root, "idempotency_key");
        if (s == NULL || strlen(s) == 0 || strlen(s) > HUB_IDEM_MAX) {
            snprintf(errmsg, errcap,
                     "batch: expected \"idempotency_key\" as a string of 1 to %d "
                     "bytes",
                     HUB_IDEM_MAX);
            goto out;
        }
        for (const char *p = s; *p != 0; p++) {
            if (*p <= ' ' || *p > '~') {
                snprintf(errmsg, errcap,
                         "batch: \"idempotency_key\" must be printable ASCII "
                         "without spaces");
                goto out;
            }
        }
        snprintf(b->idem, sizeof(b->idem), "%s", s);
    }
    head = cJSON_GetObjectItemCaseSensitive(root, "head");
    if (!cJSON_IsObject(head) || json_get_int(head, "seq", 0, (int64_t)1 << 53, &v) != POSGATE_OK ||
        hex32(get_str(head, "hash"), b->head_hash) != POSGATE_OK) {
        snprintf(errmsg, errcap, "batch: expected \"head\": {\"hash\": 64 hex, \"seq\": integer}");
        goto out;
    }
    b->head_seq = (uint64_t)v;
    events = cJSON_GetObjectItemCaseSensitive(root, "events");
    if (!cJSON_IsArray(events)) {
        snprintf(errmsg, errcap, "batch: expected \"events\" as an array");
        goto out;
    }
    n = (size_t)cJSON_GetArraySize(events);
    if (n > HUB_BATCH_EVENTS) {
        snprintf(errmsg, errcap, "batch: %zu events, at most %d are taken at once", n,
                 HUB_BATCH_EVENTS);
        err = POSGATE_ERR_TOOBIG;
        goto out;
    }
    if (n > 0) {
        b->ev = plat_calloc(n, sizeof(*b->ev));
        if (b->ev == NULL) {
            err = POSGATE_ERR_NOMEM;
            goto out;
        }
    }
    err = crypto_hash_stream_new_for(&sha, true, false);
    if (err != POSGATE_OK) {
        goto out;
    }
    cJSON_ArrayForEach(item, events)
    {
        err = read_event(item, i++, b, sha, errmsg, errcap);
        if (err != POSGATE_OK) {
            goto out;
        }
    }
    err = POSGATE_ERR_PARSE;
    if (b->n > 0 && b->head_seq != b->ev[b->n - 1].seq) {
        snprintf(errmsg, errcap, "batch: head seq %llu, expected the last event's seq %llu",
                 (unsigned long long)b->head_seq, (unsigned long long)b->ev[b->n - 1].seq);
        goto out;
    }
    err = POSGATE_OK;
    *out = b;
    b = NULL;
out:
    crypto_hash_stream_free(sha);
    hub_batch_free(b);
    cJSON_Delete(root);
    json_arena_end();
    buf_free(&sig);
    return err;
}

enum posgate_err
hub_batch_covered(const struct hub_batch *b, uint64_t *first, char *errmsg, size_t errcap)
{
    char x[2 * AUDIT_HASH_LEN + 1], y[2 * AUDIT_HASH_LEN + 1];
    const uint8_t *want;

    if (b == NULL || first == NULL) {
        return POSGATE_ERR_INVALID;
    }
    *first = 0;
    /* from the signed head back: each event must hash to what the one after it commits to */
    want = b->head_hash;
    for (size_t i = b->n; i > 0; i--) {
        const struct hub_event *e = &b->ev[i - 1];

        if (memcmp(e->hash, want, AUDIT_HASH_LEN) != 0) {
            crypto_hex(e->hash, AUDIT_HASH_LEN, x);
            crypto_hex(want, AUDIT_HASH_LEN, y);
            *first = e->seq;
            if (i == b->n) {
                snprintf(errmsg, errcap,
                         "event %llu is not covered by the signature: it hashes to %s but the "
                         "signed head is %s",
                         (unsigned long long)e->seq, x, y);
            } else {
                snprintf(errmsg, errcap,
                         "event %llu is not covered by the signature: it hashes to %s but event "
                         "%llu names prev %s",
                         (unsigned long long)e->seq, x, (unsigned long long)b->ev[i].seq, y);
            }
            return POSGATE_ERR_REJECTED;
        }
        want = e->prev;
    }
    return POSGATE_OK;
}

void
hub_batch_free(struct hub_batch *b)
{
    if (b == NULL) {
        return;
    }
    for (size_t i = 0; i < b->n; i++) {
        plat_free(b->ev[i].text);
    }
    plat_free(b->ev);
    plat_free(b);
}

enum posgate_err
hub_gunzip(const void *in, size_t len, struct buf *out, char *errmsg, size_t errcap)
{
    z_stream z;
    enum posgate_err err = POSGATE_OK;
    int zr = Z_OK;

    if (out == NULL || (in == NULL && len > 0)) {
        return POSGATE_ERR_INVALID;
    }
    buf_reset(out);
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) {
        return POSGATE_ERR_NOMEM;
    }
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = len > UINT32_MAX ? UINT32_MAX : (uInt)len;
    if (len > UINT32_MAX) {
        snprintf(errmsg, errcap, "gzip: body of %zu bytes is too large", len);
        err = POSGATE_ERR_TOOBIG;
        goto out;
    }
    if (len == 0) {
        snprintf(errmsg, errcap, "gzip: empty body, expected a gzip stream");
        err = POSGATE_ERR_PARSE;
        goto out;
    }
    for (;;) {
        size_t room;

        err = buf_reserve(out, 16384);
        if (err == POSGATE_ERR_TOOBIG) {
            /* up to max bytes may still fit */
            err = out->len < out->max ? buf_reserve(out, out->max - out->len) : err;
        }
        if (err != POSGATE_OK) {
            if (err == POSGATE_ERR_TOOBIG) {
                snprintf(errmsg, errcap, "gzip: decodes to more than %zu bytes", out->max);
            }
            goto out;
        }
        room = out->cap - out->len - 1; /* buf keeps one byte for its NUL */
        if (out->len + room > out->max) {
            room = out->max - out->len;
        }
        if (room > UINT32_MAX) {
            room = UINT32_MAX;
        }
        z.next_out = out->data + out->len;
        z.avail_out = (uInt)room;
        zr = inflate(&z, Z_NO_FLUSH);
        out->len += room - z.avail_out;
        if (zr == Z_STREAM_END) {
            if (z.avail_in == 0) {
                break;
            }
            if (inflateReset(&z) != Z_OK) { /* another gzip member follows */
                err = POSGATE_ERR_PARSE;
                goto out;
            }
            continue;
        }
        if (zr == Z_BUF_ERROR && z.avail_in == 0) {
            snprintf(errmsg, errcap, "gzip: stream truncated after %zu bytes", len);
            err = POSGATE_ERR_PARSE;
            goto out;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            snprintf(errmsg, errcap, "gzip: not a valid gzip stream (%s)",
                     z.msg != NULL ? z.msg : "bad data");
            err = POSGATE_ERR_PARSE;
            goto out;
        }
    }
    if (out->data != NULL) {
        out->data[out->len] = 0;
    }
out:
    inflateEnd(&z);
    if (err != POSGATE_OK) {
        buf_reset(out);
    }
    return err;
}
