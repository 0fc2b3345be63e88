/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A delegated role signed away from the operator's state: an issuing authority's handover
 * (posgate-publish authority-sign, tools/publish/handover.h). The authority signs version N + 1
 * at its own time (TUF_ISSUED_FIELD, which kiosks count the list's age from), while the working
 * copy of the role in this state still holds the time of version N. tuf_writer_import_delegated
 * puts the signer's time into the working copy for the length of tuf_writer_import_signed, which
 * then compares everything else and counts the thresholds, and gives the working copy its own
 * time back when the import is refused.
 */
#include <stddef.h>

#include "json_canon.h"
#include "tuf_meta.h"
#include "tuf_writer_internal.h"

enum posgate_err
tuf_writer_import_delegated(struct tuf_writer *w, const char *role, const void *data, size_t len)
{
    struct role *r;
    cJSON *env = NULL, *own = NULL;
    const cJSON *issued;
    char emsg[200];
    enum posgate_err err = tw_usable(w, role, &r);

    if (err != POSGATE_OK || data == NULL) {
        return err != POSGATE_OK ? err : POSGATE_ERR_INVALID;
    }
    if (tw_is_top(role) || !tw_is_targets_type(role) || r->work == NULL) {
        return tw_fail(w, POSGATE_ERR_INVALID, "expected a delegated targets role, found %s",
                       role);
    }
    err = json_parse_bounded(data, len, META_MAX, &env, emsg, sizeof(emsg));
    if (err != POSGATE_OK) {
        return tw_fail(w, POSGATE_ERR_PARSE, "signed %s: %s", role, emsg);
    }
    issued = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(env, "signed"),
                                              TUF_ISSUED_FIELD);
    own = cJSON_DetachItemFromObjectCaseSensitive(r->work, TUF_ISSUED_FIELD);
    if (issued != NULL) {
        err = tw_obj_set(r->work, TUF_ISSUED_FIELD, cJSON_Duplicate(issued, 1));
    }
    if (err == POSGATE_OK) {
        err = tuf_writer_import_signed(w, role, data, len);
    }
    if (err != POSGATE_OK && !w->failed) {
        /* refused: the working copy as it was */
        cJSON_DeleteItemFromObjectCaseSensitive(r->work, TUF_ISSUED_FIELD);
        if (own != NULL) {
            cJSON_AddItemToObject(r->work, TUF_ISSUED_FIELD, own);
            own = NULL;
        }
    }
    cJSON_Delete(own);
    cJSON_Delete(env);
    return err;
}
