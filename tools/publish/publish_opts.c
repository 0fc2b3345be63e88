/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The option parser of every posgate-publish command but status (publish_opts.h): one loop over
 * the words of the command line, and the two ways the commands have always worded an option
 * given too often.
 */
#define _XOPEN_SOURCE 700
#include "publish_opts.h"

#include <string.h>

#include "publish_internal.h"

/* An option given once more than it may be: refused, in the command's words. */
static void
say_repeated(const struct opt *o, enum opt_words words)
{
    if (words == OPT_SAY_TWICE && !o->multi) {
        die_msg("option --%s given twice", o->name);
    } else if (words == OPT_SAY_TWICE) {
        die_msg("option --%s given more than %d times", o->name, OPT_VALUES_MAX);
    } else if (!o->multi) {
        die_msg("option --%s given too often (expected once)", o->name);
    } else {
        die_msg("option --%s given too often (expected at most %d)", o->name, OPT_VALUES_MAX);
    }
}

int
opt_parse(int argc, char **argv, struct opt *opts, size_t nopts, enum opt_words words)
{
    int i;

    for (i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *eq;
        size_t k, nlen;
        struct opt *o = NULL;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            die_msg("unexpected argument \"%s\" (expected an option)", a);
            return -1;
        }
        eq = strchr(a, '=');
        nlen = eq != NULL ? (size_t)(eq - a - 2) : strlen(a + 2);
        for (k = 0; k < nopts; k++) {
            if (strlen(opts[k].name) == nlen && strncmp(a + 2, opts[k].name, nlen) == 0) {
                o = &opts[k];
            }
        }
        if (o == NULL) {
            die_msg("unknown option \"%s\"", a);
            return -1;
        }
        if (!o->takes_value) {
            if (eq != NULL) {
                die_msg("option --%s takes no value", o->name);
                return -1;
            }
            o->count++;
            continue;
        }
        if ((o->count > 0 && !o->multi) || o->count == OPT_VALUES_MAX) {
            say_repeated(o, words);
            return -1;
        }
        if (eq != NULL) {
            o->values[o->count++] = eq + 1;
        } else if (i + 1 < argc) {
            o->values[o->count++] = argv[++i];
        } else {
            die_msg("option --%s needs a value", o->name);
            return -1;
        }
    }
    return 0;
}

const char *
opt_value(const struct opt *o)
{
    return o->count > 0 ? o->values[0] : NULL;
}

int
opt_require(const struct opt *o, const char *cmd)
{
    if (o->count == 0) {
        die_msg("%s: --%s is required (see %s %s --help)", cmd, o->name, prog, cmd);
        return -1;
    }
    return 0;
}
