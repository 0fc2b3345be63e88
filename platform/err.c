/* SPDX-License-Identifier: Apache-2.0 */
/* Messages and names of the error enum, from the one X-macro table in posgate_err.h. */
#include "posgate_err.h"

static const char *const messages[] = {
#define MSG(name, msg) msg,
    POSGATE_ERR_MAP(MSG)
#undef MSG
};

static const char *const names[] = {
#define NAME(name, msg) #name,
    POSGATE_ERR_MAP(NAME)
#undef NAME
};

const char *
posgate_strerror(enum posgate_err err)
{
    if ((unsigned)err >= (unsigned)POSGATE_ERR__COUNT) {
        return "unknown error";
    }
    return messages[err];
}

const char *
posgate_err_name(enum posgate_err err)
{
    if ((unsigned)err >= (unsigned)POSGATE_ERR__COUNT) {
        return "UNKNOWN";
    }
    return names[err];
}
