/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The decision engine (rules in engine.h): per-list evaluation of matches, exemptions,
 * staleness and the minors rule, the DENY > REFER > ALLOW combination, the clock-fault
 * override, and the notice text. engine_decide works in the caller's fixed-size result: no I/O,
 * no clock, no allocation. engine_check_store, at the end, feeds it from a store reader (the
 * one function here that reads; the reader allocates only when it moves to a new version), with
 * the plan of the service kept with the reader (engine_plan): a check then judges the lists its
 * hits name, not every list of the feed, while none that could take part is stale.
 */
#include "engine.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "plat_clock.h"
#include "plat_mem.h"

#define AGE_OF_MAJORITY 18
/* Room kept at the end of a notice for its closing lines. */
#define NOTICE_RESERVE 200

/* Bounded appending into a fixed buffer (truncates silently, always NUL-terminated). */
struct text {
    char *p;
    size_t cap;
    size_t len;
};

static void tprintf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
tprintf(struct text *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (t->len + 1 >= t->cap) {
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    t->len += (size_t)n;
    if (t->len >= t->cap) {
        t->len = t->cap - 1;
    }
}

const char *
engine_decision_name(enum engine_decision d)
{
    switch (d) {
    case ENGINE_ALLOW:
        return "allow";
    case ENGINE_REFER:
        return "refer";
    case ENGINE_DENY:
        return "deny";
    }
    return "unknown";
}

const char *
engine_reason_kind_name(enum engine_reason_kind k)
{
    switch (k) {
    case ENGINE_REASON_MATCH:
        return "match";
    case ENGINE_REASON_EXEMPTION:
        return "exemption";
    case ENGINE_REASON_STALE:
        return "stale";
    case ENGINE_REASON_CLOCK_FAULT:
        return "clock_fault";
    case ENGINE_REASON_OVERFLOW:
        return "overflow";
    }
    return "unknown";
}

/* A human duration: "9 days", "5 hours", "40 minutes". */
static void
format_age(int64_t s, char *out, size_t cap)
{
    if (s >= 2 * 86400) {
        snprintf(out, cap, "%" PRId64 " days", s / 86400);
    } else if (s >= 2 * 3600) {
        snprintf(out, cap, "%" PRId64 " hours", s / 3600);
    } else if (s >= 120) {
        snprintf(out, cap, "%" PRId64 " minutes", s / 60);
    } else {
        snprintf(out, cap, "%" PRId64 " seconds", s);
    }
}

/* Adds a reason, keeping the ENGINE_REASONS_MAX strongest; returns the slot or NULL. */
static struct engine_reason *
add_reason(struct engine_result *res, enum engine_reason_kind kind, enum engine_decision effect)
{
    struct engine_reason *r;

    if (res->n_reasons < ENGINE_REASONS_MAX) {
        r = &res->reasons[res->n_reasons++];
    } else {
        size_t weakest = 0;

        for (size_t i = 1; i < ENGINE_REASONS_MAX; i++) {
            if (res->reasons[i].effect < res->reasons[weakest].effect) {
                weakest = i;
            }
        }
        res->reasons_dropped++;
        if (res->reasons[weakest].effect >= effect) {
            return NULL;
        }
        r = &res->reasons[weakest];
    }
    memset(r, 0, sizeof(*r));
    r->kind = kind;
    r->effect = effect;
    r->list = -1;
    r->reason = -1;
    r->id = -1;
    r->list_id = "";
    r->list_authority = "";
    r->reason_id = "";
    r->authority = "";
    r->legal_basis = "";
    r->contest = "";
    r->valid_until = FEED_UNTIL_OPEN;
    return r;
}

static void
fill_list(struct engine_reason *r, const struct feed_config *cfg, unsigned l)
{
    r->list = (int)l;
    r->list_id = cfg->lists[l].id;
    r->list_authority = cfg->lists[l].authority;
}

static void
fill_entry(struct engine_reason *r, const struct feed_config *cfg, const struct engine_hit *h)
{
    const struct feed_reason *fr = &cfg->reasons[h->e.reason];

    fill_list(r, cfg, h->list);
    r->reason = h->e.reason;
    r->reason_id = fr->id;
    r->authority = fr->authority;
    r->legal_basis = fr->legal_basis;
    r->contest = fr->contest;
    r->overridable = fr->override == FEED_OVERRIDE_SUPERVISOR;
    memcpy(r->listing_id, h->e.listing_id, h->e.listing_id_len);
    r->listing_id[h->e.listing_id_len] = 0;
    r->valid_from = h->e.valid_from;
    r->valid_until = h->e.valid_until;
    r->id = h->id;
}

static bool
gate_applies(const struct engine_request *req, unsigned l)
{
    const struct feed_list *fl = &req->cfg->lists[l];

    if (fl->n_jurisdictions == 0) {
        return true;
    }
    for (size_t i = 0; i < req->n_jurisdictions; i++) {
        if (feed_config_list_applies_in(req->cfg, l, req->jurisdictions[i])) {
            return true;
        }
    }
    return false;
}

/* True when services a and b share a part: one lies inside the other. */
static bool
services_overlap(const struct feed_config *cfg, unsigned a, unsigned b)
{
    return feed_config_service_within(cfg, a, b) || feed_config_service_within(cfg, b, a);
}

static bool
reason_touches(const struct feed_config *cfg, unsigned r, unsigned svc)
{
    for (size_t i = 0; i < cfg->reasons[r].n_scope; i++) {
        if (services_overlap(cfg, svc, cfg->reasons[r].scope[i])) {
            return true;
        }
    }
    return false;
}

/* Rule 2's relevance: some reason the list's entries use covers the service or a part of it. A
 * stale list (or one without data) is judged on what it could hold, not on its old data: any
 * reason of the feed (its next entries could use it). */
static bool
list_relevant(const struct feed_config *cfg, const uint8_t *reasons, unsigned svc, bool stale)
{
    for (unsigned r = 0; r < cfg->n_reasons; r++) {
        bool used = stale || reasons == NULL ||
                    (r / 8 < STORE_REASON_BITMAP && (reasons[r / 8] >> (r % 8) & 1) != 0);

        if (used && reason_touches(cfg, r, svc)) {
            return true;
        }
    }
    return false;
}

/* How an entry's scope (its reason's, narrowed by the entry's own when it has one) covers a
 * service: the whole of it, a part of it (a sub-service: *part is the widest such service of
 * the first overlap found), or nothing. Scopes are subtrees of the taxonomy, so three of them
 * meet exactly when the deepest of their roots lies inside the other two. */
enum cover { COVER_NONE, COVER_PART, COVER_FULL };

static unsigned
deeper(const struct feed_config *cfg, unsigned a, unsigned b)
{
    return cfg->services[b].depth > cfg->services[a].depth ? b : a;
}

static enum cover
entry_cover(const struct feed_config *cfg, const struct feed_entry *e, unsigned svc, int *part)
{
    const struct feed_reason *fr = &cfg->reasons[e->reason];
    enum cover best = COVER_NONE;
    size_t n_narrow = e->scope_count > 0 ? e->scope_count : 1;

    for (size_t i = 0; i < fr->n_scope; i++) {
        for (size_t j = 0; j < n_narrow; j++) {
            unsigned r = fr->scope[i];
            unsigned d = deeper(cfg, svc, r);

            if (e->scope_count > 0) {
                d = deeper(cfg, d, e->scope[j]);
                if (!feed_config_service_within(cfg, d, e->scope[j])) {
                    continue;
                }
            }
            if (!feed_config_service_within(cfg, d, svc) ||
                !feed_config_service_within(cfg, d, r)) {
                continue;
            }
            if (d == svc) {
                return COVER_FULL;
            }
            if (best == COVER_NONE) {
                best = COVER_PART;
                *part = (int)d;
            }
        }
    }
    return best;
}

/* The instant lies in the entry's window [valid_from, valid_until). */
static bool
entry_in_window(const struct feed_entry *e, int64_t t)
{
    return t >= e->valid_from && (e->valid_until == FEED_UNTIL_OPEN || t < e->valid_until);
}

/* An exempt entry of the restriction's list that lifts it (rule 4): found through the same
 * identifier of the request, covering the whole service and in effect on the service date. An
 * exemption of another identifier (someone else's, or another document) lifts nothing. */
static const struct engine_hit *
exemption_for(const struct engine_request *req, const struct engine_hit *hits, size_t n_hits,
              const struct engine_hit *restriction, unsigned svc)
{
    for (size_t i = 0; i < n_hits; i++) {
        const struct engine_hit *h = &hits[i];
        int part = -1;

        if (h->list == restriction->list && h->id == restriction->id &&
            h->e.kind == FEED_KIND_EXEMPT && entry_in_window(&h->e, req->at) &&
            entry_cover(req->cfg, &h->e, svc, &part) == COVER_FULL) {
            return h;
        }
    }
    return NULL;
}

/* Identifier i is a cn_rid whose birth date shows someone under 18 at the later of now and the
 * service date (a minor then was a minor at the earlier instant too). */
static bool
id_minor(const struct engine_request *req, size_t i)
{
    const struct engine_id *id = &req->ids[i];
    struct ident tmp;
    int years = 0;

    if (id->type != IDENT_CN_RID || id->birth_days == IDENT_NO_BIRTH) {
        return false;
    }
    memset(&tmp, 0, sizeof(tmp));
    tmp.type = IDENT_CN_RID;
    tmp.birth_days = id->birth_days;
    return ident_age_at(&tmp, req->at > req->wall_now ? req->at : req->wall_now, &years) ==
               POSGATE_OK &&
           years < AGE_OF_MAJORITY;
}

static bool
subject_minor(const struct engine_request *req)
{
    for (size_t i = 0; i < req->n_ids; i++) {
        if (id_minor(req, i)) {
            return true;
        }
    }
    return false;
}

/* Appends s (the fixed sentences: no printf on an ALLOW's way). */
static void
tput(struct text *t, const char *s)
{
    size_t n = strlen(s);

    if (t->len + 1 >= t->cap) {
        return;
    }
    if (n > t->cap - 1 - t->len) {
        n = t->cap - 1 - t->len;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = 0;
}

static void
format_time(int64_t t, char *out, size_t cap)
{
    if (t == FEED_UNTIL_OPEN) {
        snprintf(out, cap, "open (no end date)");
    } else {
        plat_time_format(t, out, cap);
    }
}

static void
write_notice(const struct engine_request *req, struct engine_result *res)
{
    struct text t = {res->notice, sizeof(res->notice), 0};
    char when[32];
    char block[3 * 1024 + 512];
    bool any_entry = false;
    size_t i;

    plat_time_format(req->at, when, sizeof(when));
    tput(&t, "Decision: ");
    tput(&t, res->decision == ENGINE_DENY    ? "DENY"
             : res->decision == ENGINE_REFER ? "REFER"
                                             : "ALLOW");
    tput(&t, " for service ");
    tput(&t, req->service);
    tput(&t, " at ");
    tput(&t, when);
    tput(&t, ".\n");
    if (res->decision == ENGINE_DENY) {
        tput(&t, "This service cannot be sold to you because of the listing(s) below.\n");
    } else if (res->decision == ENGINE_REFER) {
        tput(&t, "This check could not be settled automatically. Clerk: check the customer's "
                 "identity document against the details below and ask a supervisor to "
                 "decide; do not complete the sale until the supervisor has decided.\n");
    } else {
        tput(&t, "No listing restricts this service for you.\n");
    }
    for (i = 0; i < res->n_reasons; i++) {
        const struct engine_reason *r = &res->reasons[i];
        char from[32], until[32];
        struct text b = {block, sizeof(block), 0};

        block[0] = 0;

        switch (r->kind) {
        case ENGINE_REASON_MATCH:
        case ENGINE_REASON_EXEMPTION:
            format_time(r->valid_from, from, sizeof(from));
            format_time(r->valid_until, until, sizeof(until));
            tprintf(&b,
                    "\n%s\n  List: %s (%s)\n  Authority: %s\n  Legal basis: %s\n"
                    "  Listing id: %s\n  Since: %s\n  Until: %s\n  How to contest: %s\n",
                    r->kind == ENGINE_REASON_EXEMPTION ? "Exemption applied:" : "Listing:",
                    r->list_id, r->list_authority, r->authority, r->legal_basis, r->listing_id,
                    from, until, r->contest);
            if (r->kind == ENGINE_REASON_MATCH && r->effect == ENGINE_DENY && r->overridable) {
                tprintf(&b, "  A supervisor may override this listing (the override is "
                            "audited).\n");
            }
            if (r->effect == ENGINE_REFER) {
                tprintf(&b, "  Note: %s\n", r->detail);
            }
            break;
        case ENGINE_REASON_STALE:
            if (r->effect != ENGINE_ALLOW) {
                tprintf(&b,
                        "\nList %s (%s): %s.\n  Clerk: the list data on this terminal is "
                        "out of date; refresh the terminal (network or USB bundle) or ask a "
                        "supervisor.\n",
                        r->list_id, r->list_authority, r->detail);
            }
            break;
        case ENGINE_REASON_CLOCK_FAULT:
            tprintf(&b,
                    "\nClock fault: %s.\n  Clerk: the terminal's clock cannot be trusted; "
                    "call technical support and ask a supervisor.\n",
                    r->detail);
            break;
        case ENGINE_REASON_OVERFLOW:
            tprintf(&b, "\n%s.\n  Clerk: ask a supervisor.\n", r->detail);
            break;
        }
        if (t.len + b.len + NOTICE_RESERVE >= t.cap) {
            break; /* keep room for the closing lines; the strongest reasons come first */
        }
        tprintf(&t, "%s", block);
        if (r->kind == ENGINE_REASON_MATCH || r->kind == ENGINE_REASON_EXEMPTION) {
            any_entry = true;
        }
    }
    if (res->reasons_dropped + (res->n_reasons - i) > 0) {
        tprintf(&t, "\n(%zu further reason(s) not shown.)\n",
                res->reasons_dropped + (res->n_reasons - i));
    }
    if (res->decision == ENGINE_DENY && any_entry) {
        tprintf(&t, "\nYou may contest a listing with the authority named above, citing its "
                    "listing id.\n");
    }
}

static void
sort_reasons(struct engine_result *res)
{
    for (size_t i = 1; i < res->n_reasons; i++) {
        struct engine_reason x = res->reasons[i];
        size_t j = i;

        while (j > 0 && res->reasons[j - 1].effect < x.effect) {
            res->reasons[j] = res->reasons[j - 1];
            j--;
        }
        res->reasons[j] = x;
    }
}

static enum posgate_err invalid(struct engine_result *res, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static enum posgate_err
invalid(struct engine_result *res, const char *fmt, ...)
{
    va_list ap;

    res->decision = ENGINE_REFER;
    res->n_reasons = 0;
    va_start(ap, fmt);
    vsnprintf(res->notice, sizeof(res->notice), fmt, ap);
    va_end(ap);
    return POSGATE_ERR_INVALID;
}

static enum engine_decision
max_decision(enum engine_decision a, enum engine_decision b)
{
    return a > b ? a : b;
}

/* Validates the request and the hits against the config (rule 1); *svc is the service's index.
 * Leaves res as invalid() does on a refusal. */
static enum posgate_err
check_request(const struct engine_request *req, const struct engine_hit *hits, size_t n_hits,
              struct engine_result *res, int *svc)
{
    const struct feed_config *cfg;

    if (req == NULL || req->cfg == NULL || req->service == NULL || req->lists == NULL ||
        (hits == NULL && n_hits > 0) || (req->jurisdictions == NULL && req->n_jurisdictions > 0)) {
        return invalid(res, "check: missing arguments");
    }
    cfg = req->cfg;
    if (req->ids == NULL || req->n_ids == 0 || req->n_ids > ENGINE_IDS_MAX) {
        return invalid(res, "check: expected 1 to %d identifiers, found %zu", ENGINE_IDS_MAX,
                       req->ids == NULL ? (size_t)0 : req->n_ids);
    }
    *svc = feed_config_service_find(cfg, req->service);
    if (*svc < 0) {
        return invalid(res, "check: service \"%.64s\" is not in the signed service taxonomy",
                       req->service);
    }
    res->service = *svc;
    for (size_t i = 0; i < n_hits; i++) {
        if (hits[i].id >= req->n_ids || hits[i].list >= cfg->n_lists ||
            hits[i].e.reason >= cfg->n_reasons || hits[i].e.listing_id_len > FEED_LISTING_ID_MAX ||
            hits[i].e.scope_count > FEED_SCOPE_MAX) {
            return invalid(res,
                           "check: entry %zu names an unknown identifier, list or reason "
                           "(reason %u of %u); the store and the feed config disagree",
                           i, hits[i].e.reason, cfg->n_reasons);
        }
    }
    return POSGATE_OK;
}

/* Rules 3 and 5 for restriction h of a list taking part, which meets the service (cov: how;
 * part: the sub-service when COVER_PART) and is in effect now (now_in) or at the service date:
 * its effect, recorded as a MATCH reason whose detail says why it is not a plain DENY. */
static enum engine_decision
judge_match(const struct engine_request *req, const struct engine_hit *h, bool stale,
            enum cover cov, int part, bool now_in, struct engine_result *res)
{
    const struct feed_config *cfg = req->cfg;
    const struct feed_list *fl = &cfg->lists[h->list];
    const struct feed_reason *fr = &cfg->reasons[h->e.reason];
    bool by_name = req->ids[h->id].type == IDENT_NAME_DOB;
    /* the minors rule reads the birth date of the identifier that matched, not of another one
     * passed along (someone else's) */
    bool minor = id_minor(req, h->id);
    enum engine_decision eff = ENGINE_DENY;
    struct engine_reason *r;

    if (by_name || cov == COVER_PART || !now_in) {
        eff = ENGINE_REFER;
    } else if (minor && fr->minors == FEED_MINORS_REFER) {
        eff = ENGINE_REFER;
    }
    if (stale && fl->stale_policy != FEED_STALE_DENY) {
        eff = ENGINE_REFER; /* stale + refer, stale + allow with a match */
    }
    r = add_reason(res, ENGINE_REASON_MATCH, eff);
    if (r == NULL) {
        return eff;
    }
    fill_entry(r, cfg, h);
    if (by_name) {
        snprintf(r->detail, sizeof(r->detail),
                 "name and birth date match only: verify the identity document");
    } else if (cov == COVER_PART) {
        snprintf(r->detail, sizeof(r->detail),
                 "listed for %s, a part of %s: sell only what the listing does not "
                 "cover",
                 cfg->services[part].name, req->service);
    } else if (!now_in) {
        char from[32];

        format_time(h->e.valid_from, from, sizeof(from));
        snprintf(r->detail, sizeof(r->detail),
                 "listing in effect on the service date but not at the time of sale "
                 "(from %s)",
                 from);
    } else if (minor && fr->minors == FEED_MINORS_REFER) {
        snprintf(r->detail, sizeof(r->detail), "subject is under %d and reason %s refers minors",
                 AGE_OF_MAJORITY, fr->id);
    } else if (stale && eff == ENGINE_REFER) {
        snprintf(r->detail, sizeof(r->detail),
                 "match on a stale list (policy %s): verify before refusing",
                 feed_stale_policy_name(fl->stale_policy));
    } else {
        snprintf(r->detail, sizeof(r->detail), "listed on %s for %s", fl->id, req->service);
    }
    return eff;
}

/* Rule 4's trace: the first exemption that lifted a restriction of list l, as an ALLOW reason. */
static void
note_exemption(const struct engine_request *req, unsigned l, const struct engine_hit *lifted_by,
               struct engine_result *res)
{
    struct engine_reason *r = add_reason(res, ENGINE_REASON_EXEMPTION, ENGINE_ALLOW);

    if (r != NULL) {
        fill_entry(r, req->cfg, lifted_by);
        snprintf(r->detail, sizeof(r->detail),
                 "exemption %s lifts the restrictions of list %s found through the same "
                 "identifier",
                 lifted_by->e.listing_id, req->cfg->lists[l].id);
    }
}

/* Rule 5 for a stale list l (data older than stale_after, or none): its policy's effect
 * (matched: a restriction of the list matched), recorded as a STALE reason. */
static enum engine_decision
judge_stale(const struct engine_request *req, unsigned l, bool matched, struct engine_result *res)
{
    const struct feed_list *fl = &req->cfg->lists[l];
    const struct engine_list_state *st = &req->lists[l];
    enum engine_decision eff = ENGINE_ALLOW;
    struct engine_reason *r;
    char age[32];

    switch (fl->stale_policy) {
    case FEED_STALE_REFER:
        eff = ENGINE_REFER;
        break;
    case FEED_STALE_DENY:
        eff = ENGINE_DENY;
        break;
    case FEED_STALE_ALLOW:
        eff = matched ? ENGINE_REFER : ENGINE_ALLOW;
        break;
    }
    r = add_reason(res, ENGINE_REASON_STALE, eff);
    if (r != NULL) {
        fill_list(r, req->cfg, l);
        if (!st->installed) {
            snprintf(r->detail, sizeof(r->detail),
                     "stale list: no data installed, stale_after %s, policy %s", fl->stale_after,
                     feed_stale_policy_name(fl->stale_policy));
        } else {
            format_age(st->age_s, age, sizeof(age));
            snprintf(r->detail, sizeof(r->detail),
                     "stale list: data is %s old, stale_after %s, policy %s", age, fl->stale_after,
                     feed_stale_policy_name(fl->stale_policy));
        }
    }
    return eff;
}

/* Rules 2 to 5 for list l: ALLOW when it takes no part, else the strongest effect of its
 * matches and of its staleness, each recorded as a reason. */
static enum engine_decision
judge_list(const struct engine_request *req, const struct engine_hit *hits, size_t n_hits,
           unsigned l, unsigned svc, struct engine_result *res)
{
    const struct feed_list *fl = &req->cfg->lists[l];
    const struct engine_list_state *st = &req->lists[l];
    enum engine_decision decision = ENGINE_ALLOW;
    bool stale, matched = false;
    const struct engine_hit *lifted_by = NULL;

    stale = !st->installed || st->age_s > fl->stale_after_s;
    if (!gate_applies(req, l) || !list_relevant(req->cfg, st->reasons, svc, stale)) {
        return ENGINE_ALLOW;
    }
    if (st->installed && st->age_s > res->data_age_s) {
        res->data_age_s = st->age_s;
    }
    for (size_t i = 0; i < n_hits; i++) {
        const struct engine_hit *h = &hits[i];
        const struct engine_hit *ex;
        bool now_in, at_in;
        enum cover cov;
        int part = -1;

        if (h->list != l || h->e.kind != FEED_KIND_RESTRICT) {
            continue;
        }
        cov = entry_cover(req->cfg, &h->e, svc, &part);
        now_in = entry_in_window(&h->e, req->wall_now);
        at_in = entry_in_window(&h->e, req->at);
        if (cov == COVER_NONE || (!now_in && !at_in)) {
            continue;
        }
        ex = exemption_for(req, hits, n_hits, h, svc);
        if (ex != NULL) {
            lifted_by = lifted_by != NULL ? lifted_by : ex;
            continue; /* lifted by an exemption of this list for the same identifier */
        }
        matched = true;
        decision = max_decision(decision, judge_match(req, h, stale, cov, part, now_in, res));
    }
    if (lifted_by != NULL) {
        note_exemption(req, l, lifted_by, res);
    }
    if (stale) {
        decision = max_decision(decision, judge_stale(req, l, matched, res));
    }
    return decision;
}

/* Rule 7: more rows matched than were passed. */
static void
note_overflow(struct engine_result *res)
{
    struct engine_reason *r = add_reason(res, ENGINE_REASON_OVERFLOW, ENGINE_REFER);

    if (r != NULL) {
        snprintf(r->detail, sizeof(r->detail),
                 "more than %d entries match this subject; not all could be evaluated",
                 ENGINE_HITS_MAX);
    }
}

/* Rule 8: the clock fault's reason, and no reason left with the effect DENY. */
static void
note_clock_fault(const struct engine_request *req, struct engine_result *res)
{
    struct engine_reason *r;
    char now[32], seen[32];

    res->clock_fault = true;
    /* The clock fault outranks every list reason: make room for it. */
    r = add_reason(res, ENGINE_REASON_CLOCK_FAULT, ENGINE_DENY);
    if (r != NULL) {
        r->effect = ENGINE_REFER;
        plat_time_format(req->wall_now, now, sizeof(now));
        plat_time_format(req->newest_issue_seen, seen, sizeof(seen));
        snprintf(r->detail, sizeof(r->detail),
                 "wall clock %s is earlier than the newest signed issue time seen %s", now, seen);
    }
    for (size_t i = 0; i < res->n_reasons; i++) {
        if (res->reasons[i].effect == ENGINE_DENY) {
            res->reasons[i].effect = ENGINE_REFER;
        }
    }
}

/* The strongest effect first; a clock fault first among the REFERs. */
static void
order_reasons(struct engine_result *res)
{
    sort_reasons(res);
    if (!res->clock_fault) {
        return;
    }
    for (size_t i = 0; i < res->n_reasons; i++) {
        if (res->reasons[i].kind == ENGINE_REASON_CLOCK_FAULT && i > 0) {
            struct engine_reason x = res->reasons[i];

            memmove(&res->reasons[1], &res->reasons[0], i * sizeof(res->reasons[0]));
            res->reasons[0] = x;
            break;
        }
    }
}

/* The state of list l at the check's wall clock, from its version's info. */
static struct engine_list_state
state_at(const struct engine_list_info *info, int64_t wall_now)
{
    struct engine_list_state st;

    st.installed = info->installed;
    st.age_s = info->installed ? wall_now - info->fresh_at : 0;
    st.reasons = info->reasons;
    return st;
}

/* The plan's lists that take part while none is stale: the PART lists the hits name and the
 * PART lists not installed, ascending and each once, into out (room for n_hits plus
 * plan->n_absent; n_hits <= ENGINE_HITS_MAX); returns how many. */
static size_t
planned_lists(const struct engine_plan *plan, const struct engine_hit *hits, size_t n_hits,
              uint16_t *out)
{
    uint16_t named[ENGINE_HITS_MAX];
    size_t n_named = 0, n = 0, i = 0, j = 0;

    for (size_t k = 0; k < n_hits; k++) {
        uint16_t l = hits[k].list;
        size_t at = n_named;

        if ((plan->flags[l] & ENGINE_PLAN_PART) == 0) {
            continue;
        }
        while (at > 0 && named[at - 1] > l) {
            at--;
        }
        if (at > 0 && named[at - 1] == l) {
            continue;
        }
        memmove(&named[at + 1], &named[at], (n_named - at) * sizeof(named[0]));
        named[at] = l;
        n_named++;
    }
    while (i < n_named || j < plan->n_absent) {
        uint16_t a = i < n_named ? named[i] : UINT16_MAX;
        uint16_t b = j < plan->n_absent ? plan->absent[j] : UINT16_MAX;

        out[n++] = a < b ? a : b;
        i += a <= b ? 1 : 0;
        j += b <= a ? 1 : 0;
    }
    return n;
}

/* Rules 2 to 5 over the lists, combined (rule 6). Without a usable plan every list of the
 * config is judged on req->lists. With one (states: room for cfg->n_lists, filled here from
 * the plan for the lists judged) only those that can take part are: while no list that could
 * take part is stale (wall_now <= stale_at), the PART lists the hits name and the ones not
 * installed, the others adding only their data age (min_fresh); past it, each CAND list.
 * judge_list leaves a list that takes no part without effect, so skipping one changes
 * nothing. */
static enum engine_decision
judge_lists(const struct engine_request *req, const struct engine_plan *plan,
            struct engine_list_state *states, const struct engine_hit *hits, size_t n_hits,
            unsigned svc, struct engine_result *res)
{
    enum engine_decision decision = ENGINE_ALLOW;
    uint16_t idx[ENGINE_HITS_MAX + FEED_LISTS_MAX];
    const uint16_t *judge = plan != NULL ? plan->cand : NULL;
    size_t n = plan != NULL ? plan->n_cand : req->cfg->n_lists;

    if (plan != NULL && req->wall_now <= plan->stale_at && n_hits <= ENGINE_HITS_MAX) {
        n = planned_lists(plan, hits, n_hits, idx);
        judge = idx;
        if (plan->min_fresh != INT64_MAX && req->wall_now - plan->min_fresh > res->data_age_s) {
            res->data_age_s = req->wall_now - plan->min_fresh;
        }
    }
    for (size_t k = 0; k < n; k++) {
        unsigned l = judge != NULL ? judge[k] : (unsigned)k;

        if (plan != NULL) {
            states[l] = state_at(&plan->lists[l], req->wall_now);
        }
        decision = max_decision(decision, judge_list(req, hits, n_hits, l, svc, res));
    }
    return decision;
}

/* engine_decide's body; plan and states as judge_lists takes them. */
static enum posgate_err
decide(const struct engine_request *req, const struct engine_plan *plan,
       struct engine_list_state *states, const struct engine_hit *hits, size_t n_hits,
       bool hits_truncated, struct engine_result *res)
{
    enum engine_decision decision;
    enum posgate_err err;
    int svc = -1;

    if (res == NULL) {
        return POSGATE_ERR_INVALID;
    }
    res->decision = ENGINE_REFER;
    res->service = -1;
    res->clock_fault = false;
    res->minor = false;
    res->data_age_s = -1;
    res->n_reasons = 0;
    res->reasons_dropped = 0;
    res->notice[0] = 0;
    err = check_request(req, hits, n_hits, res, &svc);
    if (err != POSGATE_OK) {
        return err;
    }
    res->minor = subject_minor(req);
    if (plan != NULL && (plan->cfg != req->cfg || plan->service != svc)) {
        for (unsigned l = 0; l < req->cfg->n_lists; l++) {
            states[l] = state_at(&plan->lists[l], req->wall_now);
        }
        plan = NULL; /* built for another config or service: judge every list */
    }
    decision = judge_lists(req, plan, states, hits, n_hits, (unsigned)svc, res);
    if (hits_truncated) {
        note_overflow(res);
        decision = max_decision(decision, ENGINE_REFER);
    }
    if (req->wall_now < req->newest_issue_seen) {
        note_clock_fault(req, res);
        decision = ENGINE_REFER;
    }
    res->decision = decision;
    order_reasons(res);
    write_notice(req, res);
    return POSGATE_OK;
}

enum posgate_err
engine_decide(const struct engine_request *req, const struct engine_hit *hits, size_t n_hits,
              bool hits_truncated, struct engine_result *res)
{
    return decide(req, NULL, NULL, hits, n_hits, hits_truncated, res);
}

enum posgate_err
engine_decide_planned(const struct engine_request *req, const struct engine_plan *plan,
                      const struct engine_hit *hits, size_t n_hits, bool hits_truncated,
                      struct engine_result *res)
{
    struct engine_list_state states[FEED_LISTS_MAX];
    struct engine_request q;

    if (req == NULL || plan == NULL || plan->lists == NULL || req->cfg == NULL ||
        req->cfg->n_lists > FEED_LISTS_MAX) {
        return decide(NULL, NULL, NULL, hits, n_hits, hits_truncated, res);
    }
    q = *req;
    q.lists = states;
    return decide(&q, plan, states, hits, n_hits, hits_truncated, res);
}

/* a + b, held at INT64_MAX (b > 0) */
static int64_t
add_sat(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}

enum posgate_err
engine_plan_build(const struct feed_config *cfg, const struct engine_list_info *lists,
                  const char (*jurisdictions)[3], size_t n_jurisdictions, int svc,
                  struct engine_plan *plan)
{
    struct engine_request q;

    if (cfg == NULL || lists == NULL || plan == NULL || plan->flags == NULL ||
        plan->absent == NULL || plan->cand == NULL ||
        (jurisdictions == NULL && n_jurisdictions > 0) || svc < 0 ||
        (size_t)svc >= cfg->n_services || cfg->n_lists > FEED_LISTS_MAX) {
        return POSGATE_ERR_INVALID;
    }
    memset(&q, 0, sizeof(q));
    q.cfg = cfg;
    q.jurisdictions = jurisdictions;
    q.n_jurisdictions = n_jurisdictions;
    plan->cfg = cfg;
    plan->lists = lists;
    plan->service = svc;
    plan->stale_at = INT64_MAX;
    plan->min_fresh = INT64_MAX;
    plan->n_absent = 0;
    plan->n_cand = 0;
    for (unsigned l = 0; l < cfg->n_lists; l++) {
        const struct engine_list_info *in = &lists[l];
        uint8_t f = 0;

        if (gate_applies(&q, l) && list_relevant(cfg, in->reasons, (unsigned)svc, true)) {
            f |= ENGINE_PLAN_CAND;
            plan->cand[plan->n_cand++] = (uint16_t)l;
            if (!in->installed) {
                f |= ENGINE_PLAN_PART;
                plan->absent[plan->n_absent++] = (uint16_t)l;
            } else {
                int64_t until = add_sat(in->fresh_at, cfg->lists[l].stale_after_s);

                plan->stale_at = until < plan->stale_at ? until : plan->stale_at;
                if (list_relevant(cfg, in->reasons, (unsigned)svc, false)) {
                    f |= ENGINE_PLAN_PART;
                    plan->min_fresh =
                        in->fresh_at < plan->min_fresh ? in->fresh_at : plan->min_fresh;
                }
            }
        }
        plan->flags[l] = f;
    }
    return POSGATE_OK;
}

/* What engine_check_store keeps with a reader (store_reader_set_cache): the list info of the
 * reader's version and the plans of the last PLAN_SLOTS services checked in it, each with the
 * lists its audit events name (engine_trail_lists). Made again when the reader's generation
 * changes; the arrays grow only with the version's number of lists. */
#define PLAN_SLOTS 8
struct plan_cache {
    uint64_t generation; /* of the reader's version described; 0: none */
    size_t cap;          /* lists the arrays hold */
    struct engine_list_info *info;
    size_t n_slots, next_slot;
    struct {
        struct engine_plan plan;
        uint16_t *trail; /* store_reader_lists indices */
        size_t n_trail;
    } slots[PLAN_SLOTS];
};

static void
plan_cache_free(void *p)
{
    struct plan_cache *c = p;

    if (c == NULL) {
        return;
    }
    plat_free(c->info);
    for (size_t i = 0; i < PLAN_SLOTS; i++) {
        plat_free(c->slots[i].plan.flags);
        plat_free(c->slots[i].plan.absent);
        plat_free(c->slots[i].plan.cand);
        plat_free(c->slots[i].trail);
    }
    plat_free(c);
}

/* Room for n config lists and STORE_LISTS_MAX installed ones in every array of c. */
static bool
plan_cache_grow(struct plan_cache *c, size_t n)
{
    if (n <= c->cap) {
        return true;
    }
    plat_free(c->info);
    c->info = plat_calloc(n, sizeof(*c->info));
    for (size_t i = 0; i < PLAN_SLOTS; i++) {
        plat_free(c->slots[i].plan.flags);
        plat_free(c->slots[i].plan.absent);
        plat_free(c->slots[i].plan.cand);
        c->slots[i].plan.flags = plat_calloc(n, sizeof(uint8_t));
        c->slots[i].plan.absent = plat_calloc(n, sizeof(uint16_t));
        c->slots[i].plan.cand = plat_calloc(n, sizeof(uint16_t));
        if (c->slots[i].trail == NULL) {
            c->slots[i].trail = plat_calloc(STORE_LISTS_MAX, sizeof(uint16_t));
        }
        if (c->slots[i].plan.flags == NULL || c->slots[i].plan.absent == NULL ||
            c->slots[i].plan.cand == NULL || c->slots[i].trail == NULL) {
            c->cap = 0;
            return false;
        }
    }
    if (c->info == NULL) {
        c->cap = 0;
        return false;
    }
    c->cap = n;
    return true;
}

/* The reader's cache describing its current version (refreshed), or NULL when it cannot be had
 * (no memory): the caller then judges every list. */
static struct plan_cache *
plan_cache_of(struct store_reader *r, const struct feed_config *cfg)
{
    struct plan_cache *c = store_reader_cache(r);
    const struct store_meta *meta = store_reader_meta(r);
    const struct store_list *lists;
    size_t n_lists = 0;

    if (c == NULL) {
        c = plat_calloc(1, sizeof(*c));
        if (c == NULL) {
            return NULL;
        }
        store_reader_set_cache(r, c, plan_cache_free);
    }
    if (c->generation == store_reader_generation(r) && c->generation != 0) {
        return c;
    }
    c->generation = 0;
    c->n_slots = 0;
    c->next_slot = 0;
    if (cfg->n_lists > FEED_LISTS_MAX || !plan_cache_grow(c, cfg->n_lists > 0 ? cfg->n_lists : 1)) {
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_lists; i++) {
        c->info[i].installed = false;
        c->info[i].fresh_at = 0;
        c->info[i].reasons = NULL;
    }
    lists = store_reader_lists(r, &n_lists);
    for (size_t i = 0; i < n_lists; i++) {
        int k = lists[i].cfg_index;

        if (k < 0 || (size_t)k >= cfg->n_lists) {
            continue;
        }
        c->info[k].installed = true;
        c->info[k].fresh_at = store_list_fresh_at(&lists[i], meta);
        c->info[k].reasons = lists[i].reasons;
    }
    c->generation = store_reader_generation(r);
    return c;
}

/* The installed lists an audit event names (engine_trail_lists) for service svc, into out
 * (room for cap); returns how many there are: those that apply at the gate and whose entries use
 * a reason covering the service or a part of it, as rule 2 judges them. */
static size_t
trail_scan(struct store_reader *r, const struct feed_config *cfg, int svc, uint16_t *out,
           size_t cap)
{
    const struct store_meta *meta = store_reader_meta(r);
    const struct store_list *lists;
    struct engine_request q; /* the gate's jurisdictions, for gate_applies */
    size_t n = 0, found = 0;

    memset(&q, 0, sizeof(q));
    q.cfg = cfg;
    q.jurisdictions = (const char(*)[3])meta->jurisdictions;
    q.n_jurisdictions = meta->n_jurisdictions;
    lists = store_reader_lists(r, &n);
    for (size_t i = 0; i < n; i++) {
        int c = lists[i].cfg_index;

        /* rule 2 on the list's installed reasons: a list whose entries cover only a part of the
         * service was judged too, and is named */
        if (c < 0 || (size_t)c >= cfg->n_lists || !gate_applies(&q, (unsigned)c) ||
            !list_relevant(cfg, lists[i].reasons, (unsigned)svc, false)) {
            continue;
        }
        if (found < cap) {
            out[found] = (uint16_t)i;
        }
        found++;
    }
    return found;
}

/* The slot of c planned for service svc, made (replacing the oldest) when there is none. */
static struct engine_plan *
plan_for(struct plan_cache *c, struct store_reader *r, const struct feed_config *cfg, int svc,
         size_t *slot)
{
    const struct store_meta *meta = store_reader_meta(r);
    size_t i;

    for (i = 0; i < c->n_slots; i++) {
        if (c->slots[i].plan.service == svc) {
            *slot = i;
            return &c->slots[i].plan;
        }
    }
    i = c->next_slot;
    c->next_slot = (c->next_slot + 1) % PLAN_SLOTS;
    if (c->n_slots < PLAN_SLOTS) {
        c->n_slots++;
    }
    c->slots[i].plan.service = -1;
    if (engine_plan_build(cfg, c->info, (const char(*)[3])meta->jurisdictions,
                          meta->n_jurisdictions, svc, &c->slots[i].plan) != POSGATE_OK) {
        c->slots[i].plan.service = -1;
        return NULL;
    }
    c->slots[i].n_trail = trail_scan(r, cfg, svc, c->slots[i].trail, STORE_LISTS_MAX);
    *slot = i;
    return &c->slots[i].plan;
}

size_t
engine_trail_lists(struct store_reader *r, int svc, uint16_t *out, size_t cap)
{
    const struct feed_config *cfg = store_reader_config(r);
    struct plan_cache *c;
    size_t slot = 0, n;

    if (cfg == NULL || svc < 0 || (size_t)svc >= cfg->n_services || (out == NULL && cap > 0)) {
        return 0;
    }
    c = plan_cache_of(r, cfg);
    if (c == NULL || plan_for(c, r, cfg, svc, &slot) == NULL) {
        return trail_scan(r, cfg, svc, out, cap);
    }
    n = c->slots[slot].n_trail < cap ? c->slots[slot].n_trail : cap;
    memcpy(out, c->slots[slot].trail, n * sizeof(*out));
    return c->slots[slot].n_trail;
}

enum posgate_err
engine_check_store(struct store_reader *r, const struct engine_request *req,
                   struct engine_result *res)
{
    struct engine_list_state states[FEED_LISTS_MAX];
    struct engine_hit hits[ENGINE_HITS_MAX];
    struct store_hit sh[ENGINE_HITS_MAX];
    struct engine_request q;
    const struct store_meta *meta;
    const struct store_list *lists;
    const struct engine_plan *plan = NULL;
    struct plan_cache *cache;
    size_t n_lists = 0, n_hits = 0, slot = 0;
    bool truncated = false;
    enum posgate_err err;
    int svc;

    if (res == NULL) {
        return POSGATE_ERR_INVALID;
    }
    res->decision = ENGINE_REFER;
    res->n_reasons = 0;
    res->notice[0] = 0;
    if (r == NULL || req == NULL || req->ids == NULL || req->n_ids == 0 ||
        req->n_ids > ENGINE_IDS_MAX) {
        return invalid(res, "check: expected 1 to %d identifiers", ENGINE_IDS_MAX);
    }
    err = req->mono_ns != 0 ? store_reader_refresh_at(r, req->mono_ns) : store_reader_refresh(r);
    if (err != POSGATE_OK) {
        snprintf(res->notice, sizeof(res->notice), "check: %s", store_reader_errmsg(r));
        return err;
    }
    q = *req;
    q.cfg = store_reader_config(r);
    if (q.cfg == NULL) {
        snprintf(res->notice, sizeof(res->notice), "check: no feed is installed");
        return POSGATE_ERR_NOTFOUND;
    }
    meta = store_reader_meta(r);
    lists = store_reader_lists(r, &n_lists);
    q.jurisdictions = (const char(*)[3])meta->jurisdictions;
    q.n_jurisdictions = meta->n_jurisdictions;
    q.newest_issue_seen = meta->newest_issue_seen;
    svc = q.service != NULL ? feed_config_service_find(q.cfg, q.service) : -1;
    cache = svc >= 0 ? plan_cache_of(r, q.cfg) : NULL;
    if (cache != NULL) {
        plan = plan_for(cache, r, q.cfg, svc, &slot);
    }
    if (plan == NULL) {
        /* no plan (unknown service, no memory): every list is judged */
        for (size_t i = 0; i < q.cfg->n_lists; i++) {
            states[i].installed = false;
            states[i].age_s = 0;
            states[i].reasons = NULL;
        }
        for (size_t i = 0; i < n_lists; i++) {
            int c = lists[i].cfg_index;

            if (c < 0 || (size_t)c >= q.cfg->n_lists) {
                continue;
            }
            states[c].installed = true;
            states[c].age_s = q.wall_now - store_list_fresh_at(&lists[i], meta);
            states[c].reasons = lists[i].reasons;
        }
        q.lists = states;
    }
    for (size_t i = 0; i < q.n_ids; i++) {
        size_t found = 0, room = ENGINE_HITS_MAX - n_hits;

        err = store_lookup_current(r, q.ids[i].key, sh, room, &found);
        if (err != POSGATE_OK) {
            snprintf(res->notice, sizeof(res->notice), "check: %s", store_reader_errmsg(r));
            return err;
        }
        if (found > room) {
            truncated = true;
            found = room;
        }
        for (size_t j = 0; j < found; j++) {
            int c = lists[sh[j].list].cfg_index;

            if (c < 0) {
                continue; /* a list the installed config no longer names */
            }
            hits[n_hits].id = (uint16_t)i;
            hits[n_hits].list = (uint16_t)c;
            hits[n_hits].e = sh[j].e;
            n_hits++;
        }
    }
    if (plan != NULL) {
        return engine_decide_planned(&q, plan, hits, n_hits, truncated, res);
    }
    return engine_decide(&q, hits, n_hits, truncated, res);
}
