/* SPDX-License-Identifier: Apache-2.0 */
/* Logging to stderr with a level threshold (POSGATE_LOG_LEVEL or plat_log_set_level). */
#ifndef POSGATE_PLAT_LOG_H
#define POSGATE_PLAT_LOG_H

enum plat_log_level { PLAT_LOG_DEBUG, PLAT_LOG_INFO, PLAT_LOG_WARN, PLAT_LOG_ERROR, PLAT_LOG_OFF };

void plat_log_set_level(enum plat_log_level level);
/* Parses "debug", "info", "warn", "error", "off"; returns 0 when unknown. */
int plat_log_level_parse(const char *s, enum plat_log_level *out);
void plat_log(enum plat_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
