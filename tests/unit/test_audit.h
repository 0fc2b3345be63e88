/* SPDX-License-Identifier: Apache-2.0 */
/* Test helpers for the audit queue (test.h's CHECK macros). Include after test.h. */
#ifndef POSGATE_TEST_AUDIT_H
#define POSGATE_TEST_AUDIT_H

#include <stdio.h>

#include "audit.h"
#include "test.h"

/* The queue's whole chain verifies; what failed is printed under the label what. */
static inline void
test_audit_verify_ok(struct audit_queue *q, const char *what)
{
    char msg[512] = "";
    enum posgate_err err = audit_verify(q, NULL, msg, sizeof(msg));

    if (err != POSGATE_OK) {
        fprintf(stderr, "%s: verify: %s\n", what, msg);
    }
    CHECK_OK(err);
}

#endif
