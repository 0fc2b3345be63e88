/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The option parser of the posgate-publish commands (publish_opts.c): each command lists its
 * options, and the words of the command line fill them, "--name value" or "--name=value" for an
 * option that takes a value, "--name" alone for a flag. A refused command line is told on
 * stderr, "posgate-publish: " and why, in the words the command has always used (enum
 * opt_words).
 *
 *   struct opt o[] = {{"state", 1, 0, {0}, 0}, {"key", 1, 1, {0}, 0}, {"force", 0, 0, {0}, 0}};
 *   int rc = opt_parse(argc, argv, o, sizeof o / sizeof o[0], OPT_SAY_TWICE);
 *
 *   if (rc > 0)  -> --help was asked: the command's usage on stdout, exit 0
 *   if (rc < 0)  -> refused (already told): exit 2
 *   opt_require(&o[0], "cmd") != 0  -> told "--state is required": exit 2
 *   opt_value(&o[0]) -> the value, or NULL; o[1].values[0 .. o[1].count - 1] for a multi option
 */
#ifndef POSGATE_PUBLISH_OPTS_H
#define POSGATE_PUBLISH_OPTS_H

#include <stddef.h>

#define OPT_VALUES_MAX 16 /* values of one option given several times */

struct opt {
    const char *name;
    int takes_value;
    int multi; /* may be given up to OPT_VALUES_MAX times */
    const char *values[OPT_VALUES_MAX];
    size_t count; /* times given (a flag's count too) */
};

/* How an option given once too often is refused. */
enum opt_words {
    OPT_SAY_TWICE,     /* "option --x given twice", "given more than 16 times" */
    OPT_SAY_TOO_OFTEN, /* "option --x given too often (expected once)", "(expected at most 16)" */
};

/* Fills opts from argv (the words after the command's name): 1 when --help or -h is reached
 * before a refused word, 0 when every word was taken, -1 refused (told on stderr). The values
 * point into argv. */
int opt_parse(int argc, char **argv, struct opt *opts, size_t nopts, enum opt_words words);

/* The option's (first) value, NULL when not given. */
const char *opt_value(const struct opt *o);

/* 0 when given; otherwise tells "CMD: --NAME is required (see posgate-publish CMD --help)"
 * and returns -1. */
int opt_require(const struct opt *o, const char *cmd);

#endif
