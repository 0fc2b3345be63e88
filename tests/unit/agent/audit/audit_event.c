/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of agent/audit_event's event encoder: on random events (every optional member present
 * and absent, strings with quotes and backslashes, empty and full arrays) its bytes equal the
 * canonical encoding of the event built as a cJSON tree, which is how the format is defined
 * (docs/audit.md); the text parses back with the bounded parser; oversized events are TOOBIG
 * and leave the buffer as it was. The queue's rule for writing a list's digest once
 * (audit_digests_mark). An event packed for the queue's ring (audit_pack.h) and unpacked equals
 * the event in its parts in use, for events of every shape up to the largest.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "audit_event.h"
#include "audit_pack.h"
#include "buf.h"
#include "crypto.h"
#include "json_canon.h"
#include "plat_clock.h"
#include "test.h"

static uint64_t rng = 99;

static uint64_t
rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A string of up to cap - 1 characters from a set that includes the escaped ones. */
static void
rnd_str(char *s, size_t cap)
{
    static const char set[] = "abcXYZ019-_.:/ \"\\{}[],\xc3\xa9";
    size_t n = rnd() % 4 == 0 ? 0 : (size_t)(rnd() % cap);

    for (size_t i = 0; i < n; i++) {
        s[i] = set[rnd() % (sizeof set - 1)];
    }
    s[n] = 0;
}

static void
rnd_event(struct audit_event *e)
{
    memset(e, 0, sizeof *e);
    rnd_str(e->id, sizeof e->id);
    e->time_us = (int64_t)(rnd() % 4000000000000000ULL);
    e->mono_us = (int64_t)(rnd() % 100000000000ULL);
    e->at = (int64_t)(rnd() % 4000000000ULL);
    e->decision = (enum audit_decision)(rnd() % 3);
    rnd_str(e->service, sizeof e->service);
    rnd_str(e->operator_id, sizeof e->operator_id);
    e->n_subjects = rnd() % (AUDIT_SUBJECTS_MAX + 1);
    for (size_t i = 0; i < e->n_subjects; i++) {
        for (size_t j = 0; j < AUDIT_SUBJECT_LEN; j++) {
            e->subjects[i][j] = (uint8_t)rnd();
        }
    }
    e->n_reasons = rnd() % (AUDIT_REASONS_MAX + 1);
    for (size_t i = 0; i < e->n_reasons; i++) {
        rnd_str(e->reasons[i].kind, sizeof e->reasons[i].kind);
        rnd_str(e->reasons[i].effect, sizeof e->reasons[i].effect);
        rnd_str(e->reasons[i].list, sizeof e->reasons[i].list);
        rnd_str(e->reasons[i].listing_id, sizeof e->reasons[i].listing_id);
        rnd_str(e->reasons[i].reason, sizeof e->reasons[i].reason);
    }
    e->feed_version = (int64_t)(rnd() % 1000000);
    e->data_age_s = rnd() % 3 == 0 ? -1 : (int64_t)(rnd() % 10000000);
    e->n_lists = rnd() % (AUDIT_LISTS_MAX + 1);
    for (size_t i = 0; i < e->n_lists; i++) {
        rnd_str(e->lists[i].id, sizeof e->lists[i].id);
        e->lists[i].seq = rnd() % 100000;
        rnd_str(e->lists[i].digest, sizeof e->lists[i].digest);
        e->lists[i].digest_written = rnd() % 2 == 0;
    }
    e->lists_more = rnd() % 3 == 0 ? (size_t)(rnd() % 50) : 0;
    e->has_override = rnd() % 3 == 0;
    if (e->has_override) {
        e->override_refused = rnd() % 2 == 0;
        rnd_str(e->override_by, sizeof e->override_by);
        rnd_str(e->override_reason, sizeof e->override_reason);
        e->overridden = (enum audit_decision)(rnd() % 3);
    }
    if (rnd() % 4 == 0) {
        rnd_str(e->error, sizeof e->error);
    }
}

/* The definition: the event as a cJSON tree, canonically encoded. */
static enum posgate_err
reference(const struct audit_event *e, const char *device_id, uint64_t seq,
          const uint8_t prev[AUDIT_HASH_LEN], struct buf *out)
{
    cJSON *root = cJSON_CreateObject(), *a;
    char hex[2 * AUDIT_HASH_LEN + 1], t[32];
    enum posgate_err err;

    crypto_hex(prev, AUDIT_HASH_LEN, hex);
    cJSON_AddStringToObject(root, "device_id", device_id);
    cJSON_AddStringToObject(root, "prev", hex);
    cJSON_AddNumberToObject(root, "seq", (double)seq);
    cJSON_AddNumberToObject(root, "v", AUDIT_EVENT_VERSION);
    cJSON_AddStringToObject(root, "kind", "decision");
    cJSON_AddStringToObject(root, "id", e->id);
    plat_time_format(e->time_us / 1000000, t, sizeof t);
    cJSON_AddStringToObject(root, "time", t);
    plat_time_format(e->at, t, sizeof t);
    cJSON_AddStringToObject(root, "at", t);
    cJSON_AddNumberToObject(root, "time_us", (double)e->time_us);
    cJSON_AddNumberToObject(root, "mono_us", (double)e->mono_us);
    cJSON_AddStringToObject(root, "decision", audit_decision_name(e->decision));
    cJSON_AddStringToObject(root, "service", e->service);
    cJSON_AddStringToObject(root, "operator", e->operator_id);
    a = cJSON_AddArrayToObject(root, "subjects");
    for (size_t i = 0; i < e->n_subjects; i++) {
        char sh[2 * AUDIT_SUBJECT_LEN + 1];
        crypto_hex(e->subjects[i], AUDIT_SUBJECT_LEN, sh);
        cJSON_AddItemToArray(a, cJSON_CreateString(sh));
    }
    a = cJSON_AddArrayToObject(root, "reasons");
    for (size_t i = 0; i < e->n_reasons; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(a, o);
        cJSON_AddStringToObject(o, "kind", e->reasons[i].kind);
        cJSON_AddStringToObject(o, "effect", e->reasons[i].effect);
        cJSON_AddStringToObject(o, "list", e->reasons[i].list);
        cJSON_AddStringToObject(o, "listing_id", e->reasons[i].listing_id);
        cJSON_AddStringToObject(o, "reason", e->reasons[i].reason);
    }
    cJSON_AddNumberToObject(root, "feed_version", (double)e->feed_version);
    if (e->data_age_s >= 0) {
        cJSON_AddNumberToObject(root, "data_age_s", (double)e->data_age_s);
    } else {
        cJSON_AddNullToObject(root, "data_age_s");
    }
    a = cJSON_AddArrayToObject(root, "lists");
    for (size_t i = 0; i < e->n_lists; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToArray(a, o);
        cJSON_AddStringToObject(o, "id", e->lists[i].id);
        cJSON_AddNumberToObject(o, "seq", (double)e->lists[i].seq);
        if (!e->lists[i].digest_written) {
            cJSON_AddStringToObject(o, "digest", e->lists[i].digest);
        }
    }
    if (e->lists_more > 0) {
        cJSON_AddNumberToObject(root, "lists_more", (double)e->lists_more);
    }
    if (e->has_override) {
        cJSON *o = cJSON_AddObjectToObject(root, "override");
        cJSON_AddStringToObject(o, "by", e->override_by);
        cJSON_AddStringToObject(o, "reason", e->override_reason);
        cJSON_AddStringToObject(o, "overridden_decision", audit_decision_name(e->overridden));
        if (e->override_refused) {
            cJSON_AddBoolToObject(o, "refused", 1);
        }
    }
    if (e->error[0] != 0) {
        cJSON_AddStringToObject(root, "error", e->error);
    }
    err = json_canon_encode(root, out);
    cJSON_Delete(root);
    return err;
}

static void
set_list(struct audit_event *e, size_t i, const char *id, uint64_t seq, const char *digest)
{
    snprintf(e->lists[i].id, sizeof e->lists[i].id, "%s", id);
    e->lists[i].seq = seq;
    snprintf(e->lists[i].digest, sizeof e->lists[i].digest, "%s", digest);
    e->lists[i].digest_written = (i % 2) == 0; /* whatever the caller left: mark decides */
}

/* A list's digest is written the first time the queue names that list at that seq with that
 * digest, and not again until one of them changes or the queue forgets it. */
static void
digests_rule(void)
{
    static struct audit_digests d;
    static struct audit_event e;
    struct buf got = BUF_INIT(1u << 20);
    uint8_t prev[AUDIT_HASH_LEN] = {0};

    memset(&d, 0, sizeof d);
    memset(&e, 0, sizeof e);
    e.n_lists = 2;
    set_list(&e, 0, "court", 3, "aa");
    set_list(&e, 1, "rail", 9, "bb");
    audit_digests_mark(&d, &e);
    CHECK(!e.lists[0].digest_written && !e.lists[1].digest_written);
    CHECK_INT(d.n, 2);
    audit_digests_mark(&d, &e); /* the next decision of the same lists */
    CHECK(e.lists[0].digest_written && e.lists[1].digest_written);
    CHECK_OK(audit_event_encode(&e, "d0", 5, prev, &got));
    CHECK_CONTAINS((const char *)got.data,
                   "\"lists\":[{\"id\":\"court\",\"seq\":3},{\"id\":\"rail\",\"seq\":9}]");
    /* another service: one list known, one new */
    e.n_lists = 2;
    set_list(&e, 0, "air", 1, "cc");
    set_list(&e, 1, "court", 3, "aa");
    audit_digests_mark(&d, &e);
    CHECK(!e.lists[0].digest_written && e.lists[1].digest_written);
    CHECK_INT(d.n, 3);
    buf_reset(&got);
    CHECK_OK(audit_event_encode(&e, "d0", 6, prev, &got));
    CHECK_CONTAINS((const char *)got.data,
                   "\"lists\":[{\"digest\":\"cc\",\"id\":\"air\",\"seq\":1},"
                   "{\"id\":\"court\",\"seq\":3}]");
    /* a list at a new seq, or at the same seq with another digest: written again */
    e.n_lists = 1;
    set_list(&e, 0, "rail", 10, "bd");
    audit_digests_mark(&d, &e);
    CHECK(!e.lists[0].digest_written);
    set_list(&e, 0, "rail", 10, "be");
    audit_digests_mark(&d, &e);
    CHECK(!e.lists[0].digest_written);
    audit_digests_mark(&d, &e);
    CHECK(e.lists[0].digest_written);
    CHECK_INT(d.n, 3);
    /* a full table starts again: what it forgot is written again, never left out */
    for (size_t i = d.n; i < AUDIT_DIGESTS_MAX; i++) {
        char id[16];

        snprintf(id, sizeof id, "l%zu", i);
        set_list(&e, 0, id, 1, "ff");
        audit_digests_mark(&d, &e);
        CHECK(!e.lists[0].digest_written);
    }
    CHECK_INT(d.n, AUDIT_DIGESTS_MAX);
    set_list(&e, 0, "one-more", 1, "ff");
    audit_digests_mark(&d, &e);
    CHECK(!e.lists[0].digest_written);
    CHECK_INT(d.n, 1);
    set_list(&e, 0, "court", 3, "aa");
    audit_digests_mark(&d, &e);
    CHECK(!e.lists[0].digest_written);
    buf_free(&got);
}

/* Whether a and b agree in the parts of an event in use (strings, arrays up to their counts). */
static bool
same_used(const struct audit_event *a, const struct audit_event *b)
{
    bool same = a->at == b->at && a->time_us == b->time_us && a->mono_us == b->mono_us &&
                a->decision == b->decision && a->n_subjects == b->n_subjects &&
                a->n_reasons == b->n_reasons && a->feed_version == b->feed_version &&
                a->data_age_s == b->data_age_s && a->n_lists == b->n_lists &&
                a->lists_more == b->lists_more && a->has_override == b->has_override &&
                a->override_refused == b->override_refused && strcmp(a->id, b->id) == 0 &&
                strcmp(a->service, b->service) == 0 &&
                memcmp(a->subjects, b->subjects, a->n_subjects * sizeof(a->subjects[0])) == 0 &&
                strcmp(a->operator_id, b->operator_id) == 0 && strcmp(a->error, b->error) == 0;

    for (size_t i = 0; same && i < a->n_lists; i++) {
        same = strcmp(a->lists[i].id, b->lists[i].id) == 0 && a->lists[i].seq == b->lists[i].seq &&
               strcmp(a->lists[i].digest, b->lists[i].digest) == 0 &&
               a->lists[i].digest_written == b->lists[i].digest_written;
    }
    for (size_t i = 0; same && i < a->n_reasons; i++) {
        const struct audit_reason *x = &a->reasons[i], *y = &b->reasons[i];

        same = strcmp(x->kind, y->kind) == 0 && strcmp(x->effect, y->effect) == 0 &&
               strcmp(x->list, y->list) == 0 && strcmp(x->listing_id, y->listing_id) == 0 &&
               strcmp(x->reason, y->reason) == 0;
    }
    if (same && a->has_override) {
        same = a->overridden == b->overridden && strcmp(a->override_by, b->override_by) == 0 &&
               strcmp(a->override_reason, b->override_reason) == 0;
    }
    return same;
}

static void
fill_str(char *s, size_t cap, char c)
{
    memset(s, c, cap - 1);
    s[cap - 1] = 0;
}

/* The largest event: every array full, every string at its maximum length. */
static void
max_event(struct audit_event *e)
{
    memset(e, 0, sizeof *e);
    e->at = INT64_MAX;
    e->time_us = INT64_MIN;
    e->mono_us = -1;
    e->decision = AUDIT_DENY;
    e->overridden = AUDIT_ERROR;
    e->feed_version = INT64_MAX;
    e->data_age_s = -1;
    e->lists_more = SIZE_MAX;
    e->has_override = true;
    e->override_refused = true;
    fill_str(e->id, sizeof e->id, 'i');
    fill_str(e->service, sizeof e->service, 's');
    e->n_subjects = AUDIT_SUBJECTS_MAX;
    memset(e->subjects, 0xab, sizeof e->subjects);
    fill_str(e->operator_id, sizeof e->operator_id, 'o');
    fill_str(e->error, sizeof e->error, '"');
    e->n_lists = AUDIT_LISTS_MAX;
    for (size_t i = 0; i < AUDIT_LISTS_MAX; i++) {
        fill_str(e->lists[i].id, sizeof e->lists[i].id, (char)('A' + i % 26));
        e->lists[i].seq = UINT64_MAX - i;
        fill_str(e->lists[i].digest, sizeof e->lists[i].digest, 'f');
        e->lists[i].digest_written = i % 2 == 0;
    }
    e->n_reasons = AUDIT_REASONS_MAX;
    for (size_t i = 0; i < AUDIT_REASONS_MAX; i++) {
        fill_str(e->reasons[i].kind, sizeof e->reasons[i].kind, 'k');
        fill_str(e->reasons[i].effect, sizeof e->reasons[i].effect, 'e');
        fill_str(e->reasons[i].list, sizeof e->reasons[i].list, 'l');
        fill_str(e->reasons[i].listing_id, sizeof e->reasons[i].listing_id, '\\');
        fill_str(e->reasons[i].reason, sizeof e->reasons[i].reason, 'r');
    }
    fill_str(e->override_by, sizeof e->override_by, 'b');
    fill_str(e->override_reason, sizeof e->override_reason, 'z');
}

/* e packed into cap bytes and unpacked over a struct of garbage equals e in its parts in use;
 * 0 when it did not fit. */
static size_t
round_trip(const struct audit_event *e, size_t cap)
{
    static uint8_t packed[AUDIT_PACKED_MAX + 64];
    static struct audit_event back;
    size_t n;

    memset(packed, 0xee, sizeof packed);
    n = audit_event_pack(e, packed, cap);
    CHECK(n <= cap);
    CHECK(packed[cap] == 0xee); /* nothing written past cap */
    if (n == 0) {
        return 0;
    }
    memset(&back, 0x5a, sizeof back);
    audit_event_unpack(&back, packed);
    if (!same_used(&back, e)) {
        fprintf(stderr, "packed event (%zu bytes) differs from the event\n", n);
        CHECK(0);
    }
    return n;
}

/* What the queue keeps of an event in its ring (audit_pack.h): events of every shape, up to
 * the largest, unpack to the event's parts in use; an event that does not fit is 0. */
static void
pack_rule(void)
{
    static struct audit_event e;
    size_t n, small[4];

    for (size_t k = 0; k < 4; k++) { /* ALLOWs naming 0-3 lists */
        memset(&e, 0, sizeof e);
        e.decision = AUDIT_ALLOW;
        e.time_us = 1795319670000000;
        e.data_age_s = -1;
        snprintf(e.id, sizeof e.id, "%032x", (unsigned)k);
        snprintf(e.service, sizeof e.service, "rail.hsr");
        e.n_subjects = 1;
        memset(e.subjects[0], 7, AUDIT_SUBJECT_LEN);
        e.n_lists = k;
        for (size_t i = 0; i < k; i++) {
            snprintf(e.lists[i].id, sizeof e.lists[i].id, "list-%zu", i);
            e.lists[i].seq = 40 + i;
            fill_str(e.lists[i].digest, sizeof e.lists[i].digest, 'd');
        }
        small[k] = round_trip(&e, AUDIT_PACKED_MAX);
        CHECK(small[k] > 0 && small[k] < 512);
    }
    CHECK(small[0] < small[1] && small[1] < small[2] && small[2] < small[3]);
    /* a DENY with its reasons, and the same with an error and an override */
    e.decision = AUDIT_DENY;
    e.n_reasons = 3;
    for (size_t i = 0; i < e.n_reasons; i++) {
        snprintf(e.reasons[i].kind, sizeof e.reasons[i].kind, "match");
        snprintf(e.reasons[i].effect, sizeof e.reasons[i].effect, "deny");
        snprintf(e.reasons[i].list, sizeof e.reasons[i].list, "list-%zu", i);
        snprintf(e.reasons[i].listing_id, sizeof e.reasons[i].listing_id, "L-%zu", i);
    }
    n = round_trip(&e, AUDIT_PACKED_MAX);
    CHECK(n > small[3]);
    snprintf(e.error, sizeof e.error, "store unreadable");
    e.has_override = true;
    snprintf(e.override_by, sizeof e.override_by, "supervisor-1");
    snprintf(e.override_reason, sizeof e.override_reason, "seen the passport");
    CHECK(round_trip(&e, AUDIT_PACKED_MAX) > n);
    /* exactly its size fits, a byte less does not */
    n = round_trip(&e, AUDIT_PACKED_MAX);
    CHECK_INT(round_trip(&e, n), n);
    CHECK_INT(round_trip(&e, n - 1), 0);
    CHECK_INT(round_trip(&e, 0), 0);
    /* the largest event takes AUDIT_PACKED_MAX, past what a slot of the ring holds inline */
    max_event(&e);
    CHECK_INT(round_trip(&e, AUDIT_PACKED_MAX), AUDIT_PACKED_MAX);
    CHECK_INT(round_trip(&e, 2048), 0);
    /* random events of every shape */
    for (int k = 0; k < 2000; k++) {
        rnd_event(&e);
        CHECK(round_trip(&e, AUDIT_PACKED_MAX) > 0);
    }
}

int
main(void)
{
    struct audit_event e;
    struct buf got = BUF_INIT(1u << 20), want = BUF_INIT(1u << 20);
    uint8_t prev[AUDIT_HASH_LEN];
    unsigned same = 0, copies_differ = 0;
    const int rounds = 5000;

    json_init_hooks();
    digests_rule();
    pack_rule();
    for (int k = 0; k < rounds; k++) {
        uint64_t seq = rnd() % 10000000000ULL;
        char dev[DEVICE_ID_HEX_LEN + 1];

        rnd_event(&e);
        for (size_t i = 0; i < sizeof prev; i++) {
            prev[i] = (uint8_t)rnd();
        }
        crypto_hex(prev, DEVICE_ID_HEX_LEN / 2, dev);
        buf_reset(&got);
        buf_reset(&want);
        CHECK_OK(buf_append(&got, "x", 1)); /* appends after what the buffer holds */
        if (k % 7 == 0) {
            e.time_us = -e.time_us; /* negative numbers */
        } else if (k % 7 == 1) {
            e.time_us = 1795319670000000 + k; /* events of the same second, in a row */
        }
        CHECK_OK(audit_event_encode(&e, dev, seq, prev, &got));
        CHECK_INT(strlen((const char *)got.data), got.len); /* terminated, no NUL inside */
        CHECK_OK(reference(&e, dev, seq, prev, &want));
        if (got.len == want.len + 1 && memcmp(got.data + 1, want.data, want.len) == 0) {
            same++;
        } else if (same + 1 == (unsigned)k + 1) {
            fprintf(stderr, "event %d differs:\n got  %.*s\n want %.*s\n", k, (int)got.len - 1,
                    (const char *)got.data + 1, (int)want.len, (const char *)want.data);
        }
        /* what the queue keeps of the event (packed in its ring) encodes to the same bytes */
        {
            static struct audit_event cp;
            static uint8_t packed[AUDIT_PACKED_MAX];
            struct buf again = BUF_INIT(1u << 20);

            memset(&cp, 0x5a, sizeof cp);
            CHECK(audit_event_pack(&e, packed, sizeof packed) > 0);
            audit_event_unpack(&cp, packed);
            CHECK_OK(audit_event_encode(&cp, dev, seq, prev, &again));
            if (again.len + 1 != got.len || memcmp(again.data, got.data + 1, again.len) != 0) {
                copies_differ++;
            }
            buf_free(&again);
        }
        cJSON *back = NULL;
        CHECK_OK(json_parse_bounded(got.data + 1, got.len - 1, AUDIT_EVENT_MAX, &back, NULL, 0));
        cJSON_Delete(back);
    }
    CHECK_INT(same, rounds);
    CHECK_INT(copies_differ, 0);
    /* a number the canonical form cannot carry, and an event past the size limit */
    rnd_event(&e);
    buf_reset(&got);
    CHECK_ERR(audit_event_encode(&e, "d", UINT64_C(1) << 60, prev, &got), POSGATE_ERR_UNSUPPORTED);
    CHECK_INT(got.len, 0);
    memset(e.error, 'x', sizeof e.error - 1);
    e.error[sizeof e.error - 1] = 0;
    e.n_reasons = AUDIT_REASONS_MAX;
    for (size_t i = 0; i < e.n_reasons; i++) {
        memset(e.reasons[i].listing_id, '\\', sizeof e.reasons[i].listing_id - 1);
        e.reasons[i].listing_id[sizeof e.reasons[i].listing_id - 1] = 0;
        memset(e.reasons[i].list, '"', sizeof e.reasons[i].list - 1);
        e.reasons[i].list[sizeof e.reasons[i].list - 1] = 0;
    }
    CHECK_OK(buf_append(&got, "keep", 4));
    enum posgate_err err = audit_event_encode(&e, "d", 1, prev, &got);
    if (err == POSGATE_ERR_TOOBIG) {
        CHECK_INT(got.len, 4); /* left as it was */
    } else {
        CHECK_OK(err);
        CHECK(got.len - 4 <= AUDIT_EVENT_MAX);
    }
    buf_free(&got);
    buf_free(&want);
    return test_summary("audit_event");
}
