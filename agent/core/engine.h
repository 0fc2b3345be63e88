/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The decision engine: given the entries found for a subject's keys, the service, the instant,
 * the kiosk's gate jurisdictions, the signed feed configuration and each list's data age, it
 * answers ALLOW, DENY or REFER with the reasons and a notice a clerk can hand over. The rules
 * below are the reference (no other document states them whole; docs/reliability.md "Fail-open
 * review" names, for each path to a decision, the rule that guards it and the test that proves
 * it, and docs/publishing.md "feed.json" the signed fields they read: stale_after, stale_policy,
 * scope, minors, override). engine_decide does no I/O, reads no clock and does not allocate
 * (fixed-size result with caps), so one check is a bounded amount of work; engine_check_store
 * looks the keys up in a store reader first.
 *
 * Rules, in the order they are applied:
 *   1. The service must be in the signed taxonomy (else POSGATE_ERR_INVALID).
 *   2. A list takes part only when it applies at the gate (its jurisdictions are empty or share
 *      one with the kiosk) and is relevant to the service: some reason its entries use covers
 *      the service or a part of it. A list whose reasons are unknown, a stale list and one
 *      without data are judged on what they could hold: any reason of the feed.
 *   3. Two instants: now (the sale, wall_now) and at (the service date, default now). A
 *      restriction row matches when its key is one of the subject's, now or at lies in
 *      [valid_from, valid_until), and its scope (the reason's, narrowed by the row's own) meets
 *      the service (a service covers itself and its dotted descendants: rail.hsr covers
 *      rail.hsr.first, not rail.hsrx). It counts in full only when it is in effect now and its
 *      scope covers the whole service; one in effect only at `at`, or one that covers only a
 *      sub-service of the one asked for (rail.hsr.first for rail.hsr), is a REFER naming why.
 *      So no `at` can lift a listing in effect now.
 *   4. An exempt row lifts a restriction of its own list matched through the same identifier of
 *      the request, when it is in effect at `at` and covers the whole service. Someone else's
 *      exemption, or one found through another document, lifts nothing.
 *   5. Per list, fresh data: a match DENYs, except a name_dob match (REFER) and a match whose
 *      reason says `minors: refer` when the cn_rid it matched through shows someone under 18
 *      at the later of now and at (REFER); another identifier's birth date changes nothing.
 *      Data older than stale_after (or not installed): policy refer → REFER; deny → DENY;
 *      allow → REFER on a match, else ALLOW (a match on such a list is a REFER, except under
 *      policy deny, where it keeps its fresh-data effect).
 *   6. DENY > REFER > ALLOW across lists.
 *   7. More matching rows than the engine can hold: REFER (never a silent ALLOW).
 *   8. A wall clock earlier than the newest signed issue time seen is a clock fault: the
 *      decision is REFER whatever the lists say (no time-based rule can be trusted), with a
 *      reason naming the fault, and no reason keeps the effect DENY.
 */
#ifndef POSGATE_ENGINE_H
#define POSGATE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "feed_config.h"
#include "feed_records.h"
#include "ident.h"
#include "posgate_err.h"
#include "store.h"

#define ENGINE_IDS_MAX     8  /* identifiers per check */
#define ENGINE_HITS_MAX    64 /* matching rows per check (more: REFER) */
#define ENGINE_REASONS_MAX 16 /* reasons kept in a result (the strongest) */
#define ENGINE_DETAIL_MAX  192
#define ENGINE_NOTICE_MAX  4096

/* Ordered: a larger value wins. */
enum engine_decision { ENGINE_ALLOW = 0, ENGINE_REFER = 1, ENGINE_DENY = 2 };

enum engine_reason_kind {
    ENGINE_REASON_MATCH,       /* a restriction entry applies */
    ENGINE_REASON_EXEMPTION,   /* an exempt entry lifted a list's restrictions (effect ALLOW) */
    ENGINE_REASON_STALE,       /* the list's data is older than stale_after, or missing */
    ENGINE_REASON_CLOCK_FAULT, /* wall clock earlier than the newest signed issue time */
    ENGINE_REASON_OVERFLOW     /* more matching rows than ENGINE_HITS_MAX */
};

/* One identifier of the subject, already parsed and keyed (ident_entry_key). */
struct engine_id {
    uint8_t key[FEED_KEY_LEN];
    enum ident_type type; /* IDENT_NAME_DOB matches can only REFER; IDENT_CN_RID gives age */
    int64_t birth_days;   /* days since 1970-01-01 (ident.birth_days), IDENT_NO_BIRTH if none */
};

/* What the engine knows of one list of the config (indexed like cfg->lists). */
struct engine_list_state {
    bool installed;         /* false: no data on this terminal (counts as stale) */
    int64_t age_s;          /* data age at the check, seconds (ignored when not installed) */
    const uint8_t *reasons; /* bitmap of reason indices its entries use (store_list.reasons,
                               STORE_REASON_BITMAP bytes); NULL = unknown (judged on every
                               reason of the feed, rule 2) */
};

/* A row found for one of the subject's keys. */
struct engine_hit {
    uint16_t id;   /* index into engine_request.ids */
    uint16_t list; /* index into cfg->lists */
    struct feed_entry e;
};

struct engine_request {
    const struct feed_config *cfg;
    const char *service;            /* dotted name, NUL-terminated */
    int64_t at;                     /* the service date (seconds); the caller bounds it */
    int64_t wall_now;               /* the wall clock now: the sale (seconds) */
    uint64_t mono_ns; /* engine_check_store: the monotonic clock now for the reader (0: read) */
    int64_t newest_issue_seen;      /* newest signed issue time seen (store_meta) */
    const char (*jurisdictions)[3]; /* the kiosk's gate jurisdictions ("CN") */
    size_t n_jurisdictions;
    const struct engine_id *ids; /* 1..ENGINE_IDS_MAX */
    size_t n_ids;
    const struct engine_list_state *lists; /* cfg->n_lists entries */
};

struct engine_reason {
    enum engine_reason_kind kind;
    enum engine_decision effect; /* what this reason contributes */
    int list;                    /* cfg list index, -1 for a clock fault or overflow */
    int reason;                  /* cfg reason index, -1 when none */
    /* Borrowed from the config ("" when none); valid while the config lives. */
    const char *list_id;
    const char *list_authority;
    const char *reason_id;
    const char *authority;
    const char *legal_basis;
    const char *contest;
    char listing_id[FEED_LISTING_ID_MAX + 1]; /* "" when none */
    int64_t valid_from;                       /* 0 when none */
    int64_t valid_until;                      /* FEED_UNTIL_OPEN when open or none */
    bool overridable;                         /* the reason allows a supervisor override */
    int id;                                   /* request id index that matched, -1 when none */
    char detail[ENGINE_DETAIL_MAX];
};

struct engine_result {
    enum engine_decision decision;
    int service; /* cfg service index */
    bool clock_fault;
    bool minor;         /* a cn_rid shows the subject under 18 at the instant */
    int64_t data_age_s; /* oldest data age among the lists that took part, -1 when none */
    size_t n_reasons;
    size_t reasons_dropped; /* weaker reasons left out past ENGINE_REASONS_MAX */
    struct engine_reason reasons[ENGINE_REASONS_MAX]; /* strongest effect first */
    char notice[ENGINE_NOTICE_MAX]; /* plain text for the customer and the clerk */
};

/* What a feed version says of one list (indexed like cfg->lists): the list states of a check
 * are these at its wall_now (age_s = wall_now - fresh_at). */
struct engine_list_info {
    bool installed;
    int64_t fresh_at;       /* the instant its data is as of (store_list_fresh_at) */
    const uint8_t *reasons; /* as engine_list_state.reasons */
};

/* Rule 2 worked out once for a feed version, its lists' info, the gate's jurisdictions and one
 * service: none of it depends on the subject or the instant, so a check judges only the lists
 * that can take part. While wall_now <= stale_at no installed list that could take part is
 * stale, and the lists taking part are those flagged ENGINE_PLAN_PART: a check then judges the
 * ones among them its hits name and the ones not installed, and takes the data age from
 * min_fresh. Past stale_at it judges each list flagged ENGINE_PLAN_CAND (any that could take
 * part, stale or not). The arrays are the builder's, cfg->n_lists long. */
#define ENGINE_PLAN_PART 1u /* takes part: installed and fresh, or not installed (stale) */
#define ENGINE_PLAN_CAND 2u /* applies at the gate and is relevant when judged on any reason */
struct engine_plan {
    const struct feed_config *cfg;        /* borrowed */
    const struct engine_list_info *lists; /* borrowed, cfg->n_lists */
    int service;                          /* cfg service index */
    int64_t stale_at;                     /* INT64_MAX when no installed list could take part */
    int64_t min_fresh;                    /* among the installed PART lists; INT64_MAX: none */
    uint8_t *flags;                       /* per cfg list: ENGINE_PLAN_* */
    uint16_t *absent;                     /* the PART lists not installed, ascending */
    size_t n_absent;
    uint16_t *cand; /* the CAND lists, ascending */
    size_t n_cand;
};

/* Fills plan (whose flags, absent and cand arrays hold cfg->n_lists each) for service svc.
 * INVALID for a bad argument or an unknown service. */
POSGATE_WUR enum posgate_err engine_plan_build(const struct feed_config *cfg,
                                               const struct engine_list_info *lists,
                                               const char (*jurisdictions)[3],
                                               size_t n_jurisdictions, int svc,
                                               struct engine_plan *plan);

/* Decides from hits[0..n_hits) (hits_truncated: more rows existed than were passed). Fills
 * *res completely. INVALID (unknown service, bad arguments, a hit naming an unknown id, list
 * or reason) leaves res->decision REFER, never ALLOW, with the cause in res->notice. */
POSGATE_WUR enum posgate_err engine_decide(const struct engine_request *req,
                                           const struct engine_hit *hits, size_t n_hits,
                                           bool hits_truncated, struct engine_result *res);

/* engine_decide with the list states taken from plan->lists at req->wall_now (req->lists is
 * ignored) and only the lists the plan says can take part judged: the same result as
 * engine_decide with those states. req->cfg and the jurisdictions must be those the plan was
 * built from; a plan of another config or service is not used (every list is judged). */
POSGATE_WUR enum posgate_err engine_decide_planned(const struct engine_request *req,
                                                   const struct engine_plan *plan,
                                                   const struct engine_hit *hits, size_t n_hits,
                                                   bool hits_truncated, struct engine_result *res);

/* One check against a store reader: looks up every id, builds the list states from the
 * reader's version (a list's data age is wall_now minus the later of its own issued_at and the
 * feed's meta.issued_at; a config list absent from the store is not installed) and decides.
 * req->cfg, lists, jurisdictions and newest_issue_seen are taken from the reader (the fields
 * given in req are ignored). NOTFOUND when no feed config is installed. Does not allocate
 * unless the reader moves to a new version: it keeps with the reader (store_reader_set_cache)
 * the version's list info and the plans of the last services checked, made again when the
 * reader's generation changes. */
POSGATE_WUR enum posgate_err engine_check_store(struct store_reader *r,
                                                const struct engine_request *req,
                                                struct engine_result *res);

/* The installed lists an audit event names for a check of service svc in the reader's current
 * version (docs/audit.md, "lists"): those that apply at the gate and whose entries use a reason
 * covering the service, as store_reader_lists indices in its order. Writes the first cap to out
 * and returns how many there are. Read from the plan engine_check_store keeps with the reader
 * for its version and the service when there is one (then O(cap)). */
size_t engine_trail_lists(struct store_reader *r, int svc, uint16_t *out, size_t cap);

const char *engine_decision_name(enum engine_decision d);       /* "allow", "deny", "refer" */
const char *engine_reason_kind_name(enum engine_reason_kind k); /* "match", ... */

#endif
