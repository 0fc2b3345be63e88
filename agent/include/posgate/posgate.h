/* SPDX-License-Identifier: Apache-2.0 */
/*
 * posgate: the public C API for in-process use by kiosk software. One question, answered from
 * local verified data without any network: may this subject buy this service? ALLOW, DENY or
 * REFER, with reasons and a notice for the customer.
 *
 *   struct posgate *pg;
 *   struct posgate_request *rq;
 *   struct posgate_result *res;
 *
 *   posgate_open("/var/lib/posgate", &pg);
 *   posgate_request_new(&rq);
 *   posgate_result_new(&res);
 *   posgate_request_set_service(rq, "rail.hsr");
 *   posgate_request_add_id(rq, "cn_rid:11010519491231002X");   INVALID: posgate_request_errmsg
 *   posgate_check(pg, rq, res);                                  thread-safe on one pg
 *   switch (posgate_result_decision(res)) { ... }
 *   puts(posgate_result_notice(res));
 *
 * Every handle is opaque; every function that can fail returns enum posgate_err. A decision is
 * not an error: posgate_check returns OK and fills the result with ALLOW, DENY or REFER. On any
 * error the result's decision is REFER, never ALLOW. Every decision is recorded in the audit
 * queue (DIR/audit.db, docs/audit.md); a DENY or REFER is durable before posgate_check returns.
 * One request and one result per thread;
 * any number of threads may share one struct posgate.
 */
#ifndef POSGATE_H
#define POSGATE_H

#include <stddef.h>
#include <stdint.h>

#include "posgate_err.h"

#ifdef __cplusplus
extern "C" {
#endif

enum posgate_decision {
    POSGATE_ALLOW = 0,
    POSGATE_DENY = 1,
    POSGATE_REFER = 3 /* the values are the CLI exit codes */
};

struct posgate;
struct posgate_request;
struct posgate_result;

/* Opens the data directory made by `posgate init` (NULL: $POSGATE_DATA_DIR, else
 * /var/lib/posgate). NOTFOUND when it holds no store; CORRUPT for a damaged store; INVALID for a
 * bad list key file. A message is available through posgate_open_errmsg(). */
POSGATE_API POSGATE_WUR enum posgate_err posgate_open(const char *data_dir, struct posgate **out);
/* The reason the last posgate_open in this thread failed; never NULL. */
POSGATE_API const char *posgate_open_errmsg(void);
/* NULL is a no-op. Every call on pg in other threads must have returned first: pg, and the
 * audit queue its checks record into, are freed (a check still running would use freed memory). */
POSGATE_API void posgate_close(struct posgate *pg);

POSGATE_API POSGATE_WUR enum posgate_err posgate_request_new(struct posgate_request **out);
POSGATE_API void posgate_request_free(struct posgate_request *rq);
/* Forgets every field, to reuse the request for another check. */
POSGATE_API void posgate_request_reset(struct posgate_request *rq);
/* The dotted service name ("rail.hsr"), copied. INVALID when empty or too long. */
POSGATE_API POSGATE_WUR enum posgate_err posgate_request_set_service(struct posgate_request *rq,
                                                                     const char *service);
/* "TYPE:VALUE" (cn_rid, cn_uscc, passport, mrz, national_id, name_dob). INVALID for a malformed
 * value or a bad check character, with a message naming the field and the rule. At most 8. */
POSGATE_API POSGATE_WUR enum posgate_err posgate_request_add_id(struct posgate_request *rq,
                                                                const char *type_colon_value);
/* Name and birth date (YYYY-MM-DD): can only ever lead to REFER. */
POSGATE_API POSGATE_WUR enum posgate_err
posgate_request_set_name_dob(struct posgate_request *rq, const char *name, const char *birth_date);
/* The operator (clerk or kiosk id) recorded with the decision; copied. */
POSGATE_API POSGATE_WUR enum posgate_err posgate_request_set_operator(struct posgate_request *rq,
                                                                      const char *op);
/* The service date, RFC 3339 (default: now): the day of the journey or the stay, which may be
 * later than the sale. A check is about both instants: a listing in effect now applies
 * whatever the service date (no date can lift it), and one in effect only on the service date
 * gives REFER. posgate_check refuses (INVALID) a date before now minus the tolerance or after
 * now plus the horizon (posgate_set_check_window). */
POSGATE_API POSGATE_WUR enum posgate_err posgate_request_set_at(struct posgate_request *rq,
                                                                const char *rfc3339);
/* A supervisor override (by: the supervisor's id; reason: free text, both copied, no control
 * characters). posgate_check then turns a DENY into ALLOW only when every reason that denies is
 * a listing whose reason allows `override: supervisor`; a REFER from another list stays a REFER.
 * Otherwise posgate_check returns INVALID ("listing X on list Y does not allow a supervisor
 * override"; an ALLOW or REFER has nothing to override). Either way the decision and the
 * override are audited. */
POSGATE_API POSGATE_WUR enum posgate_err
posgate_request_set_override(struct posgate_request *rq, const char *by, const char *reason);
/* The message of the request's last failure; never NULL. */
POSGATE_API const char *posgate_request_errmsg(const struct posgate_request *rq);

POSGATE_API POSGATE_WUR enum posgate_err posgate_result_new(struct posgate_result **out);
POSGATE_API void posgate_result_free(struct posgate_result *res);

/* Answers the request from the installed verified data. Errors: INVALID (no service, no
 * identifier, a service the signed taxonomy does not name), NOTFOUND (no verified data is
 * installed), CORRUPT, IO, NOMEM; the result then says REFER and posgate_result_errmsg why. */
POSGATE_API POSGATE_WUR enum posgate_err
posgate_check(struct posgate *pg, const struct posgate_request *rq, struct posgate_result *res);

POSGATE_API enum posgate_decision posgate_result_decision(const struct posgate_result *res);
/* "allow", "deny", "refer". */
POSGATE_API const char *posgate_decision_name(enum posgate_decision d);
/* A unique id of the decision (32 hex digits). */
POSGATE_API const char *posgate_result_decision_id(const struct posgate_result *res);
/* The notice for the customer and the clerk: list, authority, legal basis, listing id, since,
 * until and how to contest, or what a REFER asks the clerk to do. */
POSGATE_API const char *posgate_result_notice(const struct posgate_result *res);
POSGATE_API const char *posgate_result_errmsg(const struct posgate_result *res);
/* The result as the JSON object `posgate check --json` prints (owned by res, valid until the
 * next check with it). NULL only when memory ran out. */
POSGATE_API const char *posgate_result_json(struct posgate_result *res);

/* The seq of the decision's audit event (docs/audit.md) once committed: always for a DENY or
 * REFER and in strict mode; 0 for a batched ALLOW (committed within 50 ms). */
POSGATE_API uint64_t posgate_result_audit_seq(const struct posgate_result *res);

/* Audit durability of ALLOW events: "strict" (the default: committed before posgate_check
 * returns, like every DENY and REFER) or "batched" (group commit within 50 ms or 256 events;
 * a power loss may lose up to that window of ALLOW events, never a DENY or REFER). INVALID
 * for any other mode. */
POSGATE_API POSGATE_WUR enum posgate_err posgate_set_audit_durability(struct posgate *pg,
                                                                      const char *mode);
/* Bounds of the audit queue: max_bytes of stored events (0: unbounded; default 256 MiB; past
 * it ALLOWs are folded into counted summaries, DENY and REFER are always kept) and the days
 * acknowledged events are kept (default 30). */
POSGATE_API POSGATE_WUR enum posgate_err
posgate_set_audit_limits(struct posgate *pg, uint64_t max_bytes, uint32_t retention_days);

/* Bounds of a request's service date (posgate_request_set_at): at most tolerance_s before now
 * (clock skew between the caller and the kiosk; default 300) and at most horizon_s after now
 * (default 120 days). INVALID for a negative bound. */
POSGATE_API POSGATE_WUR enum posgate_err posgate_set_check_window(struct posgate *pg,
                                                                  int64_t tolerance_s,
                                                                  int64_t horizon_s);

/* The installed version as the JSON object `posgate status --json` prints; the caller frees
 * *out with posgate_free. */
POSGATE_API POSGATE_WUR enum posgate_err posgate_status_json(struct posgate *pg, char **out);
POSGATE_API void posgate_free(void *p);

#ifdef __cplusplus
}
#endif

#endif
