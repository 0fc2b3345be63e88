/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one error enum of posgate and its table of messages. Names and messages come from one
 * X-macro list so that a code can never lack a message. Installed beside posgate.h.
 *
 * One way to carry what went wrong, everywhere in posgate: a function returns this enum, and
 * the words (what was expected, what was found) travel
 *   - in the handle it works on, read with <module>_errmsg(handle): store_errmsg,
 *     carrier_errmsg, tuf_client_errmsg, feed_reader_errmsg, posgate_result_errmsg ...;
 *   - when there is no handle (the function creates one, or runs once), in a caller buffer
 *     passed as (char *errmsg, size_t errcap), which may be NULL.
 * posgate_open() is the one function with neither: its prototype is the installed API's, so
 * it keeps its message per thread for posgate_open_errmsg(). Inside the project, the command
 * line and the daemon open through posgate_admin_open(), which takes a caller buffer.
 */
#ifndef POSGATE_ERR_H
#define POSGATE_ERR_H

#define POSGATE_ERR_MAP(X)                                                                         \
    X(OK, "success")                                                                               \
    X(NOMEM, "out of memory")                                                                      \
    X(IO, "I/O error")                                                                             \
    X(INVALID, "invalid input")                                                                    \
    X(USAGE, "usage error")                                                                        \
    X(NOTFOUND, "not found")                                                                       \
    X(TOOBIG, "input exceeds its size limit")                                                      \
    X(PARSE, "malformed data")                                                                     \
    X(BADSIG, "signature verification failed")                                                     \
    X(BADHASH, "length or hash mismatch")                                                          \
    X(ROLLBACK, "update is older than the installed version")                                      \
    X(EXPIRED, "metadata expired")                                                                 \
    X(UNSUPPORTED, "unsupported algorithm or format")                                              \
    X(REJECTED, "update rejected")                                                                 \
    X(CORRUPT, "local store is corrupted")                                                         \
    X(STATE, "wrong state for this operation")                                                     \
    X(NETWORK, "network failure")                                                                  \
    X(RETRY, "temporary failure, retry later")

enum posgate_err {
#define POSGATE_ERR_ENUM(name, msg) POSGATE_ERR_##name,
    POSGATE_ERR_MAP(POSGATE_ERR_ENUM)
#undef POSGATE_ERR_ENUM
        POSGATE_ERR__COUNT
};

#define POSGATE_OK POSGATE_ERR_OK

#if defined(__GNUC__)
#define POSGATE_WUR __attribute__((warn_unused_result))
#else
#define POSGATE_WUR
#endif

#if defined(__GNUC__)
#define POSGATE_API __attribute__((visibility("default")))
#else
#define POSGATE_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Short English message for an error code; never NULL. */
POSGATE_API const char *posgate_strerror(enum posgate_err err);
/* Symbolic name ("BADSIG") of an error code; never NULL. */
POSGATE_API const char *posgate_err_name(enum posgate_err err);

#ifdef __cplusplus
}
#endif

#endif
