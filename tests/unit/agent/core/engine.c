/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of agent/engine: one test per decision rule at least (taxonomy, validity window
 * boundaries, scope prefix match both ways, exemptions per list, gate jurisdiction, stale
 * policies with and without a match, clock fault, minors, name_dob never denying, DENY > REFER >
 * ALLOW across lists, list relevance, overflow), the reasons and notice fields, and one check
 * end to end through a real store with real keyed identifiers.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include "crypto.h"
#include "engine.h"
#include "ident.h"
#include "plat_clock.h"
#include "store.h"
#include "test.h"

static const char *config_json =
    "{\"feed_id\":\"t\","
    "\"services\":[\"air\",\"air.first\",\"rail\",\"rail.hsr\",\"rail.hsr.first\",\"hotel\","
    "\"hotel.star\"],"
    "\"lists\":["
    "{\"id\":\"spc\",\"authority\":\"Supreme People's Court\",\"jurisdictions\":[\"CN\"],"
    "\"stale_after\":\"7d\",\"stale_policy\":\"refer\"},"
    "{\"id\":\"no-fly\",\"authority\":\"CAAC\",\"jurisdictions\":[\"CN\"],"
    "\"stale_after\":\"48h\",\"stale_policy\":\"deny\"},"
    "{\"id\":\"hotel-ban\",\"authority\":\"Hotel Association\",\"jurisdictions\":[],"
    "\"stale_after\":\"30d\",\"stale_policy\":\"allow\"}],"
    "\"reasons\":["
    "{\"id\":\"debtor\",\"authority\":\"SPC\",\"legal_basis\":\"Fa Shi [2015] No. 17, Art. 3\","
    "\"contest\":\"hotline 12368, https://zxgk.court.gov.cn/\",\"scope\":[\"rail.hsr\",\"air\"],"
    "\"override\":\"none\",\"minors\":\"refer\"},"
    "{\"id\":\"avsec\",\"authority\":\"CAAC\",\"legal_basis\":\"Civil Aviation Security Art. 14\","
    "\"contest\":\"+86 10 12326\",\"scope\":[\"air\"],\"override\":\"supervisor\","
    "\"minors\":\"deny\"},"
    "{\"id\":\"conduct\",\"authority\":\"Hotel Association\",\"legal_basis\":\"Code s. 4\","
    "\"contest\":\"redress@hotel.example\",\"scope\":[\"hotel\"],\"minors\":\"refer\"}]}";

enum { L_SPC, L_NOFLY, L_HOTEL };
enum { R_DEBTOR, R_AVSEC, R_CONDUCT };

#define T0    1780000000 /* 2026-05-28 */
#define FROM  (T0 - 86400 * 100)
#define UNTIL (T0 + 86400 * 100)

static struct feed_config *cfg;
static struct engine_list_state states[3];
static struct engine_id ids[4];
static const char cn[][3] = {"CN"};
static const char hk[][3] = {"HK"};
static const char hkcn[][3] = {"HK", "CN"};

static void
reset_request(struct engine_request *q, const char *service)
{
    memset(q, 0, sizeof(*q));
    q->cfg = cfg;
    q->service = service;
    q->at = T0;
    q->wall_now = T0;
    q->newest_issue_seen = T0 - 3600;
    q->jurisdictions = cn;
    q->n_jurisdictions = 1;
    for (int i = 0; i < 4; i++) {
        memset(&ids[i], 0, sizeof(ids[i]));
        ids[i].key[0] = (uint8_t)(i + 1);
        ids[i].type = IDENT_PASSPORT;
        ids[i].birth_days = IDENT_NO_BIRTH;
    }
    q->ids = ids;
    q->n_ids = 1;
    for (int i = 0; i < 3; i++) {
        states[i].installed = true;
        states[i].age_s = 3600;
        states[i].reasons = NULL;
    }
    q->lists = states;
}

static struct engine_hit
hit(uint16_t id, uint16_t list, uint16_t reason, enum feed_kind kind, const char *listing)
{
    struct engine_hit h;

    memset(&h, 0, sizeof(h));
    h.id = id;
    h.list = list;
    memcpy(h.e.key, ids[id].key, 16);
    CHECK_OK(feed_entry_set_listing_id(&h.e, listing));
    h.e.reason = reason;
    h.e.kind = (uint8_t)kind;
    h.e.valid_from = FROM;
    h.e.valid_until = UNTIL;
    return h;
}

static enum engine_decision
decide(const struct engine_request *q, const struct engine_hit *h, size_t n,
       struct engine_result *res)
{
    CHECK_OK(engine_decide(q, h, n, false, res));
    return res->decision;
}

static void
test_safety(void)
{
    struct engine_request q;
    struct engine_result res;
    struct engine_hit h;

    CHECK_ERR(engine_decide(NULL, NULL, 0, false, &res), POSGATE_ERR_INVALID);
    CHECK_INT(res.decision, ENGINE_REFER);
    CHECK_ERR(engine_decide(NULL, NULL, 0, false, NULL), POSGATE_ERR_INVALID);
    reset_request(&q, "rail.maglev");
    CHECK_ERR(engine_decide(&q, NULL, 0, false, &res), POSGATE_ERR_INVALID);
    CHECK_INT(res.decision, ENGINE_REFER);
    CHECK_CONTAINS(res.notice, "\"rail.maglev\" is not in the signed service taxonomy");
    reset_request(&q, "rail");
    q.n_ids = 0;
    CHECK_ERR(engine_decide(&q, NULL, 0, false, &res), POSGATE_ERR_INVALID);
    q.n_ids = ENGINE_IDS_MAX + 1;
    CHECK_ERR(engine_decide(&q, NULL, 0, false, &res), POSGATE_ERR_INVALID);
    reset_request(&q, "air");
    h = hit(0, 7, R_DEBTOR, FEED_KIND_RESTRICT, "X-1"); /* unknown list */
    CHECK_ERR(engine_decide(&q, &h, 1, false, &res), POSGATE_ERR_INVALID);
    CHECK_INT(res.decision, ENGINE_REFER);
    h = hit(0, L_SPC, 99, FEED_KIND_RESTRICT, "X-1"); /* unknown reason */
    CHECK_ERR(engine_decide(&q, &h, 1, false, &res), POSGATE_ERR_INVALID);
    h = hit(0, L_SPC, R_DEBTOR, FEED_KIND_RESTRICT, "X-1");
    h.id = 3; /* beyond n_ids */
    CHECK_ERR(engine_decide(&q, &h, 1, false, &res), POSGATE_ERR_INVALID);
    CHECK_STR(engine_decision_name(ENGINE_DENY), "deny");
    CHECK_STR(engine_reason_kind_name(ENGINE_REASON_CLOCK_FAULT), "clock_fault");
}

static void
test_allow_and_deny_fields(void)
{
    struct engine_request q;
    struct engine_result res;
    struct engine_hit h;
    const struct engine_reason *r;

    reset_request(&q, "rail.hsr");
    CHECK_INT(decide(&q, NULL, 0, &res), ENGINE_ALLOW);
    CHECK_INT(res.n_reasons, 0);
    CHECK_CONTAINS(res.notice, "ALLOW");
    CHECK_INT(res.data_age_s, 3600);

    h = hit(0, L_SPC, R_DEBTOR, FEED_KIND_RESTRICT, "SPC-2024-000123");
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_DENY);
    CHECK_INT(res.n_reasons, 1);
    r = &res.reasons[0];
    CHECK_INT(r->kind, ENGINE_REASON_MATCH);
    CHECK_INT(r->effect, ENGINE_DENY);
    CHECK_STR(r->list_id, "spc");
    CHECK_STR(r->listing_id, "SPC-2024-000123");
    CHECK_STR(r->reason_id, "debtor");
    CHECK_STR(r->authority, "SPC");
    CHECK_STR(r->legal_basis, "Fa Shi [2015] No. 17, Art. 3");
    CHECK_CONTAINS(r->contest, "12368");
    CHECK_INT(r->valid_from, FROM);
    CHECK_INT(r->valid_until, UNTIL);
    CHECK(!r->overridable);
    CHECK_INT(r->id, 0);
    /* The notice names list, authority, legal basis, listing id, since, until, contest. */
    CHECK_CONTAINS(res.notice, "DENY");
    CHECK_CONTAINS(res.notice, "List: spc (Supreme People's Court)");
    CHECK_CONTAINS(res.notice, "Legal basis: Fa Shi [2015] No. 17, Art. 3");
    CHECK_CONTAINS(res.notice, "Listing id: SPC-2024-000123");
    CHECK_CONTAINS(res.notice, "Since: 2026-02-17T");
    CHECK_CONTAINS(res.notice, "Until: 2026-09-05T");
    CHECK_CONTAINS(res.notice, "How to contest: hotline 12368");
    /* Open-ended, and the supervisor override flag. */
    reset_request(&q, "air");
    h = hit(0, L_NOFLY, R_AVSEC, FEED_KIND_RESTRICT, "CAAC-1");
    h.e.valid_until = FEED_UNTIL_OPEN;
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_DENY);
    CHECK(res.reasons[0].overridable);
    CHECK_CONTAINS(res.notice, "Until: open");
    CHECK_CONTAINS(res.notice, "supervisor may override");
}

static void
test_validity_window(void)
{
    struct engine_request q;
    struct engine_result res;
    struct engine_hit h;

    reset_request(&q, "air");
    h = hit(0, L_SPC, R_DEBTOR, FEED_KIND_RESTRICT, "W-1");
    q.newest_issue_seen = FROM - 86400; /* no clock fault at the instants below */
    q.at = q.wall_now = FROM - 1;
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_ALLOW);
    q.at = q.wall_now = FROM;
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_DENY);
    q.at = q.wall_now = UNTIL - 1;
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_DENY);
    q.at = q.wall_now = UNTIL; /* lapses at valid_until, even offline */
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_ALLOW);
    h.e.valid_until = FEED_UNTIL_OPEN;
    q.at = UNTIL + 86400 * 3650;
    q.wall_now = q.at;
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_DENY);
}

/* Two instants: the sale (now) and the service date (at). No `at` lifts a listing in effect
 * now; a listing in effect only on the service date refers. */
static void
test_sale_and_service_date(void)
{
    struct engine_request q;
    struct engine_result res;
    struct engine_hit h;

    reset_request(&q, "air");
    h = hit(0, L_SPC, R_DEBTOR, FEED_KIND_RESTRICT, "AT-1");
    /* in effect now: a service date before it began or after it lapses changes nothing */
    q.at = FROM - 86400 * 365;
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_DENY);
    q.at = UNTIL + 86400;
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_DENY);
    CHECK_STR(res.reasons[0].listing_id, "AT-1");
    /* in effect only on the service date: REFER, saying so */
    q.newest_issue_seen = FROM - 86400 * 2;
    q.wall_now = FROM - 86400;
    q.at = FROM + 86400;
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_REFER);
    CHECK_CONTAINS(res.reasons[0].detail, "service date");
    /* in effect at neither: ALLOW */
    q.at = FROM - 3600;
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_ALLOW);
    /* an exemption counts on the service date (a court-approved trip), not now */
    {
        struct engine_hit hx[2];

        reset_request(&q, "air");
        hx[0] = hit(0, L_SPC, R_DEBTOR, FEED_KIND_RESTRICT, "AT-2");
        hx[1] = hit(0, L_SPC, R_DEBTOR, FEED_KIND_EXEMPT, "AT-EX");
        hx[1].e.valid_from = T0 + 86400 * 10;
        hx[1].e.valid_until = T0 + 86400 * 12;
        CHECK_INT(decide(&q, hx, 2, &res), ENGINE_DENY);
        q.at = T0 + 86400 * 11;
        CHECK_INT(decide(&q, hx, 2, &res), ENGINE_ALLOW);
        CHECK_INT(res.reasons[0].kind, ENGINE_REASON_EXEMPTION);
    }
}

static void
test_scope_prefix(void)
{
    struct engine_request q;
    struct engine_result res;
    struct engine_hit h = hit(0, L_SPC, R_DEBTOR, FEED_KIND_RESTRICT, "S-1"); /* rail.hsr, air */

    reset_request(&q, "rail.hsr.first");
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_DENY); /* descendant covered */
    q.service = "rail.hsr";
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_DENY);
    q.service = "rail"; /* the parent is covered in part only: REFER naming the part */
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_REFER);
    CHECK_CONTAINS(res.reasons[0].detail, "listed for rail.hsr, a part of rail");
    CHECK_CONTAINS(res.notice, "REFER");
    q.service = "hotel.star";
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_ALLOW);
    q.service = "air.first";
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_DENY);
    /* Entry scope narrowing to rail.hsr.first (index 4). */
    h.e.scope_count = 1;
    h.e.scope[0] = 4;
    q.service = "rail.hsr";
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_REFER);
    CHECK_CONTAINS(res.reasons[0].detail, "listed for rail.hsr.first, a part of rail.hsr");
    q.service = "rail";
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_REFER);
    CHECK_CONTAINS(res.reasons[0].detail, "listed for rail.hsr.first, a part of rail");
    q.service = "air"; /* inside the reason, outside the narrowing */
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_ALLOW);
    q.service = "rail.hsr.first";
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_DENY);
    /* Narrowing cannot widen beyond the reason's scope (hotel, index 5). */
    h.e.scope[0] = 5;
    q.service = "hotel";
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_ALLOW);
}

static void
test_exemptions(void)
{
    struct engine_request q;
    struct engine_result res;
    struct engine_hit h[3];

    reset_request(&q, "air");
    h[0] = hit(0, L_SPC, R_DEBTOR, FEED_KIND_RESTRICT, "SPC-1");
    h[1] = hit(0, L_SPC, R_DEBTOR, FEED_KIND_EXEMPT, "SPC-EX-7");
    CHECK_INT(decide(&q, h, 2, &res), ENGINE_ALLOW);
    CHECK_INT(res.n_reasons, 1);
    CHECK_INT(res.reasons[0].kind, ENGINE_REASON_EXEMPTION);
    CHECK_STR(res.reasons[0].listing_id, "SPC-EX-7");
    CHECK_CONTAINS(res.notice, "Exemption applied");
    /* Only its own list: a no-fly restriction stays. */
    h[2] = hit(0, L_NOFLY, R_AVSEC, FEED_KIND_RESTRICT, "CAAC-9");
    CHECK_INT(decide(&q, h, 3, &res), ENGINE_DENY);
    CHECK_STR(res.reasons[0].list_id, "no-fly");
    /* An exemption outside its window or scope lifts nothing. */
    h[1].e.valid_until = T0;
    CHECK_INT(decide(&q, h, 2, &res), ENGINE_DENY);
    h[1] = hit(0, L_SPC, R_DEBTOR, FEED_KIND_EXEMPT, "SPC-EX-8");
    h[1].e.scope_count = 1;
    h[1].e.scope[0] = 3; /* rail.hsr only */
    CHECK_INT(decide(&q, h, 2, &res), ENGINE_DENY);
    q.service = "rail.hsr";
    CHECK_INT(decide(&q, h, 2, &res), ENGINE_ALLOW);
    /* An exemption found through another identifier of the request (someone else's, or
     * another document) lifts nothing. */
    q.service = "air";
    q.n_ids = 2;
    h[1] = hit(1, L_SPC, R_DEBTOR, FEED_KIND_EXEMPT, "SPC-EX-9");
    CHECK_INT(decide(&q, h, 2, &res), ENGINE_DENY);
    ids[1].type = IDENT_NAME_DOB;
    CHECK_INT(decide(&q, h, 2, &res), ENGINE_DENY);
    /* An exemption for a part of the service does not lift the whole. */
    q.n_ids = 1;
    h[1] = hit(0, L_SPC, R_DEBTOR, FEED_KIND_EXEMPT, "SPC-EX-10");
    h[1].e.scope_count = 1;
    h[1].e.scope[0] = 4; /* rail.hsr.first */
    q.service = "rail.hsr";
    CHECK_INT(decide(&q, h, 2, &res), ENGINE_DENY);
    /* Two identifiers listed, one exempted: the other listing stands. */
    q.n_ids = 2;
    ids[1].type = IDENT_PASSPORT;
    h[0] = hit(0, L_SPC, R_DEBTOR, FEED_KIND_RESTRICT, "SPC-1");
    h[1] = hit(0, L_SPC, R_DEBTOR, FEED_KIND_EXEMPT, "SPC-EX-11");
    h[2] = hit(1, L_SPC, R_DEBTOR, FEED_KIND_RESTRICT, "SPC-2");
    CHECK_INT(decide(&q, h, 3, &res), ENGINE_DENY);
    CHECK_STR(res.reasons[0].listing_id, "SPC-2");
}

static void
test_jurisdiction(void)
{
    struct engine_request q;
    struct engine_result res;
    struct engine_hit h[2];

    reset_request(&q, "air");
    h[0] = hit(0, L_SPC, R_DEBTOR, FEED_KIND_RESTRICT, "SPC-1");
    q.jurisdictions = hk;
    CHECK_INT(decide(&q, h, 1, &res), ENGINE_ALLOW); /* CN list does not apply in HK */
    q.jurisdictions = hkcn;
    q.n_jurisdictions = 2;
    CHECK_INT(decide(&q, h, 1, &res), ENGINE_DENY);
    /* Empty jurisdictions = everywhere. */
    q.jurisdictions = hk;
    q.n_jurisdictions = 1;
    q.service = "hotel.star";
    h[1] = hit(0, L_HOTEL, R_CONDUCT, FEED_KIND_RESTRICT, "H-1");
    CHECK_INT(decide(&q, &h[1], 1, &res), ENGINE_DENY);
    /* A stale CN deny-list does not apply in HK either. */
    q.service = "air";
    states[L_NOFLY].installed = false;
    CHECK_INT(decide(&q, NULL, 0, &res), ENGINE_ALLOW);
}

static void
test_stale_policies(void)
{
    struct engine_request q;
    struct engine_result res;
    struct engine_hit h;

    /* refer: no match -> REFER, match -> REFER. */
    reset_request(&q, "rail.hsr"); /* only spc's reasons cover rail.hsr... all lists relevant */
    states[L_SPC].age_s = 9 * 86400;
    CHECK_INT(decide(&q, NULL, 0, &res), ENGINE_REFER);
    CHECK_INT(res.reasons[0].kind, ENGINE_REASON_STALE);
    CHECK_STR(res.reasons[0].detail,
              "stale list: data is 9 days old, stale_after 7d, policy refer");
    CHECK_CONTAINS(res.notice, "out of date");
    h = hit(0, L_SPC, R_DEBTOR, FEED_KIND_RESTRICT, "SPC-1");
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_REFER);
    CHECK_INT(res.data_age_s, 9 * 86400);
    /* Boundary: exactly stale_after old is still fresh. */
    states[L_SPC].age_s = 7 * 86400;
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_DENY);
    CHECK_INT(decide(&q, NULL, 0, &res), ENGINE_ALLOW);
    states[L_SPC].age_s = 7 * 86400 + 1;
    CHECK_INT(decide(&q, NULL, 0, &res), ENGINE_REFER);

    /* deny: no match -> DENY, match -> DENY. */
    reset_request(&q, "air");
    states[L_NOFLY].age_s = 49 * 3600;
    CHECK_INT(decide(&q, NULL, 0, &res), ENGINE_DENY);
    CHECK_CONTAINS(res.reasons[0].detail, "policy deny");
    h = hit(0, L_NOFLY, R_AVSEC, FEED_KIND_RESTRICT, "CAAC-1");
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_DENY);
    /* Not installed counts as stale. */
    states[L_NOFLY].age_s = 0;
    states[L_NOFLY].installed = false;
    CHECK_INT(decide(&q, NULL, 0, &res), ENGINE_DENY);
    CHECK_CONTAINS(res.reasons[0].detail, "no data installed");

    /* allow: no match -> ALLOW, match -> REFER. */
    reset_request(&q, "hotel");
    states[L_HOTEL].age_s = 31 * 86400;
    CHECK_INT(decide(&q, NULL, 0, &res), ENGINE_ALLOW);
    h = hit(0, L_HOTEL, R_CONDUCT, FEED_KIND_RESTRICT, "H-1");
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_REFER);
    CHECK_INT(res.reasons[0].kind, ENGINE_REASON_MATCH);
    CHECK_INT(res.reasons[0].effect, ENGINE_REFER);
    states[L_HOTEL].age_s = 3600;
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_DENY);
}

static void
test_relevance(void)
{
    struct engine_request q;
    struct engine_result res;
    uint8_t avsec_only[STORE_REASON_BITMAP] = {1u << R_AVSEC};

    /* A fresh list whose entries only restrict air takes no part in a hotel check... */
    reset_request(&q, "hotel.star");
    states[L_NOFLY].reasons = avsec_only;
    CHECK_INT(decide(&q, NULL, 0, &res), ENGINE_ALLOW);
    CHECK_INT(res.n_reasons, 0);
    /* ...but a stale one is judged on what it could hold, not on its old data: its policy
     * (deny) applies to every service a reason of the feed covers. */
    states[L_NOFLY].age_s = 86400 * 10;
    CHECK_INT(decide(&q, NULL, 0, &res), ENGINE_DENY);
    CHECK_INT(res.reasons[0].kind, ENGINE_REASON_STALE);
    q.service = "air.first";
    CHECK_INT(decide(&q, NULL, 0, &res), ENGINE_DENY);
    /* Unknown reasons: relevant everywhere. */
    states[L_NOFLY].reasons = NULL;
    q.service = "hotel.star";
    CHECK_INT(decide(&q, NULL, 0, &res), ENGINE_DENY);
}

static void
test_clock_fault(void)
{
    struct engine_request q;
    struct engine_result res;
    struct engine_hit h = hit(0, L_SPC, R_DEBTOR, FEED_KIND_RESTRICT, "SPC-1");

    reset_request(&q, "air");
    q.newest_issue_seen = T0;
    CHECK_INT(decide(&q, NULL, 0, &res), ENGINE_ALLOW); /* equal is fine */
    q.wall_now = T0 - 1;
    CHECK_INT(decide(&q, NULL, 0, &res), ENGINE_REFER);
    CHECK(res.clock_fault);
    CHECK_INT(res.reasons[0].kind, ENGINE_REASON_CLOCK_FAULT);
    CHECK_CONTAINS(res.reasons[0].detail, "earlier than the newest signed issue time");
    CHECK_CONTAINS(res.notice, "Clock fault");
    /* A match that would DENY becomes REFER: no time rule can be trusted. */
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_REFER);
    CHECK_INT(res.reasons[0].kind, ENGINE_REASON_CLOCK_FAULT);
    CHECK_INT(res.n_reasons, 2);
    CHECK_INT(res.reasons[1].effect, ENGINE_REFER);
}

static void
test_minors(void)
{
    struct engine_request q;
    struct engine_result res;
    struct engine_hit h;
    reset_request(&q, "air");
    ids[0].type = IDENT_CN_RID;
    ids[0].birth_days = plat_days_from_civil(2010, 1, 15);    /* 16 at T0 */
    h = hit(0, L_SPC, R_DEBTOR, FEED_KIND_RESTRICT, "SPC-1"); /* minors: refer */
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_REFER);
    CHECK(res.minor);
    CHECK_CONTAINS(res.reasons[0].detail, "under 18");
    h = hit(0, L_NOFLY, R_AVSEC, FEED_KIND_RESTRICT, "CAAC-1"); /* minors: deny */
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_DENY);
    /* Turning 18 on the day of the check: an adult. */
    ids[0].birth_days = plat_days_from_civil(2008, 5, 28);
    h = hit(0, L_SPC, R_DEBTOR, FEED_KIND_RESTRICT, "SPC-1");
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_DENY);
    CHECK(!res.minor);
    ids[0].birth_days = plat_days_from_civil(2008, 5, 29); /* one day short */
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_REFER);
    /* A birth date on a passport-type id is not used. */
    ids[0].type = IDENT_PASSPORT;
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_DENY);
    /* An adult listed by passport, with a minor's cn_rid (someone else's) passed along: the
     * minors rule reads the identifier that matched, so DENY. */
    q.n_ids = 2;
    ids[1].type = IDENT_CN_RID;
    ids[1].birth_days = plat_days_from_civil(2015, 3, 1);
    CHECK_INT(decide(&q, &h, 1, &res), ENGINE_DENY);
    CHECK_STR(res.reasons[0].listing_id, "SPC-1");
}

static void
test_name_dob_never_denies(void)
{
    struct engine_request q;
    struct engine_result res;
    struct engine_hit h[2];

    reset_request(&q, "air");
    ids[0].type = IDENT_NAME_DOB;
    h[0] = hit(0, L_NOFLY, R_AVSEC, FEED_KIND_RESTRICT, "CAAC-1");
    CHECK_INT(decide(&q, h, 1, &res), ENGINE_REFER);
    CHECK_CONTAINS(res.reasons[0].detail, "name and birth date match only");
    CHECK_CONTAINS(res.notice, "identity document");
    h[1] = hit(0, L_SPC, R_DEBTOR, FEED_KIND_RESTRICT, "SPC-1");
    CHECK_INT(decide(&q, h, 2, &res), ENGINE_REFER);
    /* A document match on another id still denies. */
    q.n_ids = 2;
    h[1] = hit(1, L_SPC, R_DEBTOR, FEED_KIND_RESTRICT, "SPC-1");
    CHECK_INT(decide(&q, h, 2, &res), ENGINE_DENY);
}

static void
test_precedence(void)
{
    struct engine_request q;
    struct engine_result res;
    struct engine_hit h[2];

    /* REFER (stale spc) + DENY (no-fly match) -> DENY, the DENY reason first. */
    reset_request(&q, "air");
    states[L_SPC].age_s = 8 * 86400;
    h[0] = hit(0, L_NOFLY, R_AVSEC, FEED_KIND_RESTRICT, "CAAC-1");
    CHECK_INT(decide(&q, h, 1, &res), ENGINE_DENY);
    CHECK_INT(res.n_reasons, 2);
    CHECK_INT(res.reasons[0].effect, ENGINE_DENY);
    CHECK_INT(res.reasons[1].effect, ENGINE_REFER);
    /* REFER + ALLOW -> REFER. */
    CHECK_INT(decide(&q, NULL, 0, &res), ENGINE_REFER);
    /* Name REFER on one list + document DENY on another -> DENY. */
    reset_request(&q, "air");
    q.n_ids = 2;
    ids[1].type = IDENT_NAME_DOB;
    h[0] = hit(1, L_SPC, R_DEBTOR, FEED_KIND_RESTRICT, "SPC-1");
    h[1] = hit(0, L_NOFLY, R_AVSEC, FEED_KIND_RESTRICT, "CAAC-1");
    CHECK_INT(decide(&q, h, 2, &res), ENGINE_DENY);
    CHECK_STR(res.reasons[0].list_id, "no-fly");
}

static void
test_overflow_and_caps(void)
{
    struct engine_request q;
    struct engine_result res;
    struct engine_hit h[ENGINE_REASONS_MAX + 4];

    reset_request(&q, "air");
    CHECK_OK(engine_decide(&q, NULL, 0, true, &res));
    CHECK_INT(res.decision, ENGINE_REFER);
    CHECK_INT(res.reasons[0].kind, ENGINE_REASON_OVERFLOW);
    /* More reasons than fit: the strongest are kept, the rest counted. */
    for (size_t i = 0; i < ENGINE_REASONS_MAX + 4; i++) {
        char id[16];

        snprintf(id, sizeof(id), "SPC-%zu", i);
        h[i] = hit(0, L_SPC, R_DEBTOR, FEED_KIND_RESTRICT, id);
    }
    CHECK_INT(decide(&q, h, ENGINE_REASONS_MAX + 4, &res), ENGINE_DENY);
    CHECK_INT(res.n_reasons, ENGINE_REASONS_MAX);
    CHECK_INT(res.reasons_dropped, 4);
    CHECK_CONTAINS(res.notice, "further reason(s) not shown");
    CHECK_CONTAINS(res.notice, "You may contest"); /* the closing lines always fit */
}

/* A small deterministic generator (xorshift64*): the differential test's configs, hits and
 * times are reproducible from its seed. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t
rnd(uint32_t n)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 33) % n;
}

static const char *const diff_services[] = {
    "air", "air.first", "rail", "rail.hsr", "rail.hsr.first", "hotel", "hotel.star"};
#define DIFF_SERVICES 7
#define DIFF_REASONS  5

/* A config of n_lists lists with random gates, stale_after and policies, and DIFF_REASONS
 * reasons with random scopes, minors and overrides. */
static struct feed_config *
diff_config(unsigned n_lists)
{
    static const char *const jur[] = {"", "\"CN\"", "\"HK\"", "\"CN\",\"HK\""};
    static const char *const after[] = {"1h", "6h", "2d", "7d", "30d"};
    static const char *const policy[] = {"refer", "deny", "allow"};
    size_t cap = 256u * n_lists + 4096u, len = 0;
    char *j = malloc(cap);
    struct feed_config *c = NULL;
    char msg[FEED_ERRMSG_MIN];

    if (j == NULL) {
        return NULL;
    }
    len += (size_t)snprintf(j + len, cap - len, "{\"feed_id\":\"d\",\"services\":[");
    for (unsigned i = 0; i < DIFF_SERVICES; i++) {
        len += (size_t)snprintf(j + len, cap - len, "%s\"%s\"", i ? "," : "", diff_services[i]);
    }
    len += (size_t)snprintf(j + len, cap - len, "],\"lists\":[");
    for (unsigned i = 0; i < n_lists; i++) {
        len += (size_t)snprintf(j + len, cap - len,
                                "%s{\"id\":\"l%u\",\"authority\":\"A%u\",\"jurisdictions\":[%s],"
                                "\"stale_after\":\"%s\",\"stale_policy\":\"%s\"}",
                                i ? "," : "", i, i, jur[rnd(4)], after[rnd(5)], policy[rnd(3)]);
    }
    len += (size_t)snprintf(j + len, cap - len, "],\"reasons\":[");
    for (unsigned i = 0; i < DIFF_REASONS; i++) {
        const char *a = diff_services[rnd(DIFF_SERVICES)], *b = diff_services[rnd(DIFF_SERVICES)];
        bool two = rnd(2) != 0 && strcmp(a, b) != 0;

        len += (size_t)snprintf(j + len, cap - len,
                                "%s{\"id\":\"r%u\",\"authority\":\"A\",\"legal_basis\":\"B\","
                                "\"contest\":\"C\",\"scope\":[\"%s\"%s%s%s],\"override\":\"%s\","
                                "\"minors\":\"%s\"}",
                                i ? "," : "", i, a, two ? ",\"" : "", two ? b : "", two ? "\"" : "",
                                rnd(2) ? "none" : "supervisor", rnd(2) ? "refer" : "deny");
    }
    len += (size_t)snprintf(j + len, cap - len, "]}");
    if (len >= cap ||
        feed_config_parse(j, len, FEED_CONFIG_STRICT, &c, msg, sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "diff config: %s\n", len >= cap ? "too long" : msg);
        c = NULL;
    }
    free(j);
    return c;
}

/* The two results are the same: decision, every field of every reason, the notice. */
static bool
same_result(const struct engine_result *a, const struct engine_result *b)
{
    if (a->decision != b->decision || a->service != b->service ||
        a->clock_fault != b->clock_fault || a->minor != b->minor ||
        a->data_age_s != b->data_age_s || a->n_reasons != b->n_reasons ||
        a->reasons_dropped != b->reasons_dropped || strcmp(a->notice, b->notice) != 0) {
        return false;
    }
    for (size_t i = 0; i < a->n_reasons; i++) {
        const struct engine_reason *x = &a->reasons[i], *y = &b->reasons[i];

        if (x->kind != y->kind || x->effect != y->effect || x->list != y->list ||
            x->reason != y->reason || x->list_id != y->list_id || x->reason_id != y->reason_id ||
            strcmp(x->listing_id, y->listing_id) != 0 || x->valid_from != y->valid_from ||
            x->valid_until != y->valid_until || x->overridable != y->overridable ||
            x->id != y->id || strcmp(x->detail, y->detail) != 0) {
            return false;
        }
    }
    return true;
}

/* engine_decide_planned against engine_decide (the oracle, every list judged on states made
 * from the same list info): random configs of many lists, lists not installed or of unknown
 * reasons, random hits (restrictions and exemptions, narrowed scopes, windows, name_dob and
 * minors), sale instants from before the newest issue seen (clock faults) to past every
 * stale_after, and random gates. Both paths must be taken often. */
static void
test_planned_matches_full(void)
{
    static const char jurs[][3] = {"CN", "HK"};
    struct engine_list_info *info = calloc(FEED_LISTS_MAX, sizeof(*info));
    struct engine_list_state *st = calloc(FEED_LISTS_MAX, sizeof(*st));
    uint8_t *bitmaps = calloc(FEED_LISTS_MAX, STORE_REASON_BITMAP);
    uint8_t *flags = calloc(FEED_LISTS_MAX, 1);
    uint16_t *absent = calloc(FEED_LISTS_MAX, sizeof(uint16_t));
    uint16_t *cand = calloc(FEED_LISTS_MAX, sizeof(uint16_t));
    struct engine_result *full = malloc(sizeof(*full)), *planned = malloc(sizeof(*planned));
    struct engine_hit h[ENGINE_HITS_MAX + 8];
    int fast = 0, slow = 0, differ = 0, non_allow = 0, allow = 0;

    if (info == NULL || st == NULL || bitmaps == NULL || flags == NULL || absent == NULL ||
        cand == NULL || full == NULL || planned == NULL) {
        CHECK(0);
        goto out;
    }
    for (int round = 0; round < 24 && differ == 0; round++) {
        unsigned n_lists = round % 3 == 0 ? 300 : 20 + rnd(200);
        struct feed_config *c = diff_config(n_lists);
        int64_t base = T0 - 3600;

        if (c == NULL) {
            CHECK(0);
            goto out;
        }
        for (unsigned l = 0; l < n_lists; l++) {
            uint8_t *bm = &bitmaps[(size_t)l * STORE_REASON_BITMAP];

            memset(bm, 0, STORE_REASON_BITMAP);
            bm[0] = (uint8_t)(rnd(2) ? 1u << rnd(DIFF_REASONS) : rnd(1u << DIFF_REASONS));
            info[l].installed = round % 4 == 1 || rnd(10) != 0; /* some rounds: all */
            /* odd rounds: every list recent, so that most checks find none stale */
            info[l].fresh_at = base - (int64_t)rnd(round % 2 ? 600 : 3 * 86400);
            info[l].reasons = rnd(8) == 0 ? NULL : bm;
        }
        for (int check = 0; check < 400; check++) {
            struct engine_request q;
            struct engine_plan plan;
            size_t n_jur = rnd(3), n_hits = rnd(10) == 0 ? rnd(ENGINE_HITS_MAX + 8) : rnd(4);
            int svc = (int)rnd(DIFF_SERVICES);

            reset_request(&q, diff_services[svc]);
            q.cfg = c;
            q.jurisdictions = n_jur == 2 ? jurs : n_jur == 1 ? &jurs[rnd(2)] : NULL;
            q.n_jurisdictions = n_jur;
            q.wall_now = base + (int64_t)rnd(40 * 86400) - 7200; /* some past every stale_after */
            if (rnd(4) != 0 && round % 2 != 0) {
                q.wall_now = base + (int64_t)rnd(3600); /* most with none stale */
            }
            q.at = rnd(3) == 0 ? q.wall_now + (int64_t)rnd(30 * 86400) : q.wall_now;
            q.newest_issue_seen = base - 3600 + (rnd(6) == 0 ? (int64_t)rnd(7200) : 0); /* faults */
            q.n_ids = 1 + rnd(4);
            for (size_t i = 0; i < q.n_ids; i++) {
                ids[i].type = rnd(4) == 0 ? IDENT_NAME_DOB : rnd(2) ? IDENT_CN_RID : IDENT_PASSPORT;
                ids[i].birth_days =
                    rnd(2) ? (int64_t)(T0 / 86400) - (int64_t)rnd(40 * 366) : IDENT_NO_BIRTH;
            }
            for (size_t i = 0; i < n_hits; i++) {
                h[i] = hit((uint16_t)rnd((uint32_t)q.n_ids), (uint16_t)rnd(n_lists),
                           (uint16_t)rnd(DIFF_REASONS),
                           rnd(4) == 0 ? FEED_KIND_EXEMPT : FEED_KIND_RESTRICT, "X-1");
                h[i].e.valid_from = T0 - (int64_t)rnd(200 * 86400);
                h[i].e.valid_until =
                    rnd(3) == 0 ? FEED_UNTIL_OPEN : T0 + (int64_t)rnd(60 * 86400) - 30 * 86400;
                if (rnd(4) == 0) {
                    h[i].e.scope_count = 1;
                    h[i].e.scope[0] = (uint16_t)rnd(DIFF_SERVICES);
                }
            }
            for (unsigned l = 0; l < n_lists; l++) {
                st[l].installed = info[l].installed;
                st[l].age_s = info[l].installed ? q.wall_now - info[l].fresh_at : 0;
                st[l].reasons = info[l].reasons;
            }
            q.lists = st;
            plan.flags = flags;
            plan.absent = absent;
            plan.cand = cand;
            CHECK_OK(engine_plan_build(c, info, q.jurisdictions, q.n_jurisdictions, svc, &plan));
            CHECK_OK(engine_decide(&q, h, n_hits, n_hits > 60, full));
            q.lists = NULL; /* the planned path reads the plan's list info only */
            CHECK_OK(engine_decide_planned(&q, &plan, h, n_hits, n_hits > 60, planned));
            if (q.wall_now <= plan.stale_at) {
                fast++;
            } else {
                slow++;
            }
            non_allow += full->decision != ENGINE_ALLOW;
            allow += full->decision == ENGINE_ALLOW;
            if (!same_result(full, planned)) {
                fprintf(stderr, "round %d check %d: planned %s, full %s\n--\n%s\n--\n%s\n", round,
                        check, engine_decision_name(planned->decision),
                        engine_decision_name(full->decision), planned->notice, full->notice);
                differ++;
                break;
            }
        }
        feed_config_free(c);
    }
    CHECK_INT(differ, 0);
    CHECK(fast > 500);
    CHECK(slow > 500);
    CHECK(non_allow > 500);
    CHECK(allow > 500);
    fprintf(stderr,
            "planned vs full: %d checks with no list stale, %d past stale_at, %d not ALLOW, "
            "%d ALLOW\n",
            fast, slow, non_allow, allow);
out:
    free(info);
    free(st);
    free(bitmaps);
    free(flags);
    free(absent);
    free(cand);
    free(full);
    free(planned);
}

static void
test_through_store(void)
{
    char dir[256], path[300], msg[STORE_ERRMSG_MAX];
    const char *base = getenv("TMPDIR");
    struct store *s = NULL;
    struct store_update *u = NULL;
    struct store_reader *r = NULL;
    struct crypto_hmac_key k;
    uint8_t list_key[32];
    struct ident listed, other;
    char rid[IDENT_SYNTH_CN_RID_SIZE];
    struct feed_entry e;
    struct store_meta m;
    struct engine_request q;
    struct engine_id sid[1];
    struct engine_result res;
    const char *cc[] = {"CN"};

    snprintf(dir, sizeof(dir), "%s/posgate-engine-XXXXXX", base != NULL ? base : "/tmp");
    if (mkdtemp(dir) == NULL) {
        CHECK(0);
        return;
    }
    snprintf(path, sizeof(path), "%s/store.db", dir);
    memset(list_key, 0x42, sizeof(list_key));
    CHECK_OK(crypto_hmac_key_init(&k, list_key, sizeof(list_key)));
    ident_synth_cn_rid(1, rid);
    CHECK_OK(ident_parse("cn_rid", rid, strlen(rid), &listed, NULL, 0));
    ident_synth_cn_rid(2, rid);
    CHECK_OK(ident_parse("cn_rid", rid, strlen(rid), &other, NULL, 0));

    CHECK_OK(store_open(path, STORE_CREATE, &s, msg, sizeof(msg)));
    if (s == NULL) {
        return;
    }
    CHECK_OK(store_reader_new(s, &r));
    reset_request(&q, "rail.hsr.first");
    sid[0].type = IDENT_CN_RID;
    sid[0].birth_days = IDENT_NO_BIRTH;
    ident_entry_key(&k, &listed, sid[0].key);
    q.ids = sid;
    CHECK_ERR(engine_check_store(r, &q, &res), POSGATE_ERR_NOTFOUND); /* nothing installed */
    CHECK(res.decision != ENGINE_ALLOW);

    memset(&m, 0, sizeof(m));
    m.issued_at = T0 - 3600;
    m.newest_issue_seen = T0 - 3600;
    CHECK_OK(store_begin_update(s, &u));
    CHECK_OK(store_update_set_meta(u, &m));
    CHECK_OK(store_update_set_jurisdictions(u, cc, 1));
    CHECK_OK(store_update_set_config(u, config_json, strlen(config_json)));
    CHECK_OK(store_list_snapshot_begin(u, "spc", 0));
    memset(&e, 0, sizeof(e));
    ident_entry_key(&k, &listed, e.key);
    CHECK_OK(feed_entry_set_listing_id(&e, "SPC-2024-000777"));
    e.reason = R_DEBTOR;
    e.id_type = IDENT_CN_RID;
    e.valid_from = FROM;
    e.valid_until = FEED_UNTIL_OPEN;
    CHECK_OK(store_list_add(u, &e));
    CHECK_OK(store_list_finish(u, 1, T0 - 7200, NULL));
    CHECK_OK(store_list_snapshot_begin(u, "no-fly", 0));
    CHECK_OK(store_list_finish(u, 1, T0 - 7200, NULL));
    CHECK_OK(store_list_snapshot_begin(u, "hotel-ban", 0));
    CHECK_OK(store_list_finish(u, 1, T0 - 7200, NULL));
    CHECK_OK(store_update_commit(u));

    CHECK_OK(engine_check_store(r, &q, &res));
    CHECK_INT(res.decision, ENGINE_DENY);
    CHECK_STR(res.reasons[0].listing_id, "SPC-2024-000777");
    CHECK_INT(res.data_age_s, 3600);
    ident_entry_key(&k, &other, sid[0].key);
    CHECK_OK(engine_check_store(r, &q, &res));
    CHECK_INT(res.decision, ENGINE_ALLOW);
    /* Data ages from the wall clock: ten days later the spc list is stale (refer). */
    q.wall_now = T0 + 10 * 86400;
    q.at = q.wall_now;
    CHECK_OK(engine_check_store(r, &q, &res));
    /* spc is stale (policy refer) and matches: REFER; but the empty no-fly list is stale too
     * (policy deny), and an empty stale list is judged on what it could hold: DENY. */
    CHECK_INT(res.decision, ENGINE_DENY);
    /* A new version (newer metadata) is seen at once: the plan kept with the reader is made
     * again, so the data age is the new version's, not the last plan's. */
    q.wall_now = T0;
    q.at = T0;
    CHECK_OK(engine_check_store(r, &q, &res));
    CHECK_INT(res.data_age_s, 3600);
    m.issued_at = T0 - 600;
    m.newest_issue_seen = T0 - 600;
    CHECK_OK(store_begin_update(s, &u));
    CHECK_OK(store_update_set_meta(u, &m));
    CHECK_OK(store_update_commit(u));
    CHECK_OK(engine_check_store(r, &q, &res));
    CHECK_INT(res.decision, ENGINE_ALLOW);
    CHECK_INT(res.data_age_s, 600);
    store_reader_free(r);
    store_close(s);
    crypto_hmac_key_cleanup(&k);
    {
        char cmd[400];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "could not remove %s\n", dir);
        }
    }
}

int
main(void)
{
    char msg[FEED_ERRMSG_MIN];

    if (feed_config_parse(config_json, strlen(config_json), FEED_CONFIG_STRICT, &cfg, msg,
                          sizeof(msg)) != POSGATE_OK) {
        fprintf(stderr, "config: %s\n", msg);
        return 1;
    }
    test_safety();
    test_allow_and_deny_fields();
    test_validity_window();
    test_sale_and_service_date();
    test_scope_prefix();
    test_exemptions();
    test_jurisdiction();
    test_stale_policies();
    test_relevance();
    test_clock_fault();
    test_minors();
    test_name_dob_never_denies();
    test_precedence();
    test_overflow_and_caps();
    test_planned_matches_full();
    test_through_store();
    feed_config_free(cfg);
    return test_summary("engine");
}
