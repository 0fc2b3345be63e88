/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Packing an audit event for the queue's ring (audit_pack.h).
 */
#define _POSIX_C_SOURCE 200809L
#include "audit_pack.h"

#include <stdbool.h>
#include <string.h>

#include "plat_mem.h"

enum { PACK_OVERRIDE = 1, PACK_REFUSED = 2, PACK_ERROR = 4 };

struct pack_head {
    int64_t at, time_us, mono_us, feed_version, data_age_s, lists_more;
    int32_t decision, overridden;
    uint8_t n_subjects, n_reasons, n_lists, flags;
};

/* Where the packing writes; p == NULL once something did not fit. */
struct pw {
    uint8_t *p, *end;
};

static void
put(struct pw *w, const void *src, size_t n)
{
    if (w->p == NULL || (size_t)(w->end - w->p) < n) {
        w->p = NULL;
        return;
    }
    memcpy(w->p, src, n);
    w->p += n;
}

/* A string of a char[cap] member: at most cap - 1 bytes. */
static void
put_str(struct pw *w, const char *s, size_t cap)
{
    uint16_t n = (uint16_t)strnlen(s, cap - 1);

    put(w, &n, sizeof n);
    put(w, s, n);
}

#define PUT_STR(w, member) put_str((w), (member), sizeof(member))

size_t
audit_event_pack(const struct audit_event *e, uint8_t *dst, size_t cap)
{
    struct pw w = {dst, dst + cap};
    struct pack_head h;

    memset(&h, 0, sizeof h);
    h.at = e->at;
    h.time_us = e->time_us;
    h.mono_us = e->mono_us;
    h.feed_version = e->feed_version;
    h.data_age_s = e->data_age_s;
    h.lists_more = (int64_t)e->lists_more;
    h.decision = (int32_t)e->decision;
    h.overridden = (int32_t)e->overridden;
    h.n_subjects =
        (uint8_t)(e->n_subjects < AUDIT_SUBJECTS_MAX ? e->n_subjects : AUDIT_SUBJECTS_MAX);
    h.n_reasons = (uint8_t)(e->n_reasons < AUDIT_REASONS_MAX ? e->n_reasons : AUDIT_REASONS_MAX);
    h.n_lists = (uint8_t)(e->n_lists < AUDIT_LISTS_MAX ? e->n_lists : AUDIT_LISTS_MAX);
    h.flags =
        (uint8_t)((e->has_override ? PACK_OVERRIDE : 0) | (e->override_refused ? PACK_REFUSED : 0) |
                  (e->error[0] != 0 ? PACK_ERROR : 0));
    put(&w, &h, sizeof h);
    PUT_STR(&w, e->id);
    PUT_STR(&w, e->service);
    put(&w, e->subjects, h.n_subjects * sizeof(e->subjects[0]));
    PUT_STR(&w, e->operator_id);
    if (h.flags & PACK_ERROR) {
        PUT_STR(&w, e->error);
    }
    for (size_t i = 0; i < h.n_lists; i++) {
        const struct audit_list *l = &e->lists[i];
        uint8_t written = l->digest_written;

        PUT_STR(&w, l->id);
        put(&w, &l->seq, sizeof l->seq);
        PUT_STR(&w, l->digest);
        put(&w, &written, 1);
    }
    for (size_t i = 0; i < h.n_reasons; i++) {
        const struct audit_reason *r = &e->reasons[i];

        PUT_STR(&w, r->kind);
        PUT_STR(&w, r->effect);
        PUT_STR(&w, r->list);
        PUT_STR(&w, r->listing_id);
        PUT_STR(&w, r->reason);
    }
    if (h.flags & PACK_OVERRIDE) {
        PUT_STR(&w, e->override_by);
        PUT_STR(&w, e->override_reason);
    }
    return w.p != NULL ? (size_t)(w.p - dst) : 0;
}

static const uint8_t *
get_str(const uint8_t *p, char *d, size_t cap)
{
    uint16_t n;

    memcpy(&n, p, sizeof n);
    p += sizeof n;
    n = n < cap ? n : (uint16_t)(cap - 1);
    memcpy(d, p, n);
    d[n] = 0;
    return p + n;
}

#define GET_STR(p, member) get_str((p), (member), sizeof(member))

void
audit_event_unpack(struct audit_event *dst, const uint8_t *p)
{
    struct pack_head h;

    memcpy(&h, p, sizeof h);
    p += sizeof h;
    dst->at = h.at;
    dst->time_us = h.time_us;
    dst->mono_us = h.mono_us;
    dst->decision = (enum audit_decision)h.decision;
    dst->overridden = (enum audit_decision)h.overridden;
    dst->n_subjects = h.n_subjects;
    dst->n_reasons = h.n_reasons;
    dst->feed_version = h.feed_version;
    dst->data_age_s = h.data_age_s;
    dst->n_lists = h.n_lists;
    dst->lists_more = (size_t)h.lists_more;
    dst->has_override = (h.flags & PACK_OVERRIDE) != 0;
    dst->override_refused = (h.flags & PACK_REFUSED) != 0;
    p = GET_STR(p, dst->id);
    p = GET_STR(p, dst->service);
    memcpy(dst->subjects, p, h.n_subjects * sizeof(dst->subjects[0]));
    p += h.n_subjects * sizeof(dst->subjects[0]);
    p = GET_STR(p, dst->operator_id);
    if (h.flags & PACK_ERROR) {
        p = GET_STR(p, dst->error);
    } else {
        dst->error[0] = 0;
    }
    for (size_t i = 0; i < h.n_lists; i++) {
        struct audit_list *l = &dst->lists[i];

        p = GET_STR(p, l->id);
        memcpy(&l->seq, p, sizeof l->seq);
        p = GET_STR(p + sizeof l->seq, l->digest);
        l->digest_written = *p++ != 0;
    }
    for (size_t i = 0; i < h.n_reasons; i++) {
        struct audit_reason *r = &dst->reasons[i];

        p = GET_STR(p, r->kind);
        p = GET_STR(p, r->effect);
        p = GET_STR(p, r->list);
        p = GET_STR(p, r->listing_id);
        p = GET_STR(p, r->reason);
    }
    if (h.flags & PACK_OVERRIDE) {
        p = GET_STR(p, dst->override_by);
        (void)GET_STR(p, dst->override_reason);
    }
}

enum posgate_err
audit_packed_store(struct audit_packed *p, const struct audit_event *e)
{
    if (audit_event_pack(e, p->bytes, sizeof(p->bytes)) > 0) {
        p->event = p->bytes;
        return POSGATE_OK;
    }
    if (p->ext == NULL) {
        p->ext = plat_malloc(AUDIT_PACKED_MAX);
    }
    p->event = p->ext != NULL && audit_event_pack(e, p->ext, AUDIT_PACKED_MAX) > 0 ? p->ext : NULL;
    return p->event != NULL ? POSGATE_OK : POSGATE_ERR_NOMEM;
}

bool
audit_packed_load(const struct audit_packed *p, struct audit_event *dst)
{
    if (p->event == NULL) {
        return false;
    }
    audit_event_unpack(dst, p->event);
    return true;
}

void
audit_packed_cleanup(struct audit_packed *p)
{
    plat_free(p->ext);
    p->ext = NULL;
    p->event = NULL;
}
