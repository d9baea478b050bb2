/* opts.h - settings defined once as a table: name, environment variable, --flag, type,
 * default, bounds and help. Loading (default < environment < flag), `--help` and the
 * Markdown docs are all generated from the table, for every program of the project.
 *
 * Strings stored by the engine are owned by the config struct; gw_opts_free() frees
 * them. Settings marked GW_OPT_SECRET are never echoed, not even in error messages.
 */
#ifndef GW_OPTS_H
#define GW_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "log.h"

/* GW_OPT_IGNORED: a setting another product used that has no effect here; it is accepted
 * (so a deployment's environment works as is), documented, and reported by the program. */
typedef enum { GW_OPT_INT, GW_OPT_BOOL, GW_OPT_STR, GW_OPT_ENUM, GW_OPT_IGNORED } gw_opt_type_t;

#define GW_OPT_SECRET 1u

typedef struct {
    const char *flag; /* --flag */
    const char *env;
    gw_opt_type_t type;
    size_t off; /* offsetof() in the config struct: long, bool, char * or int (enum) */
    const char *def;
    long min, max;
    const char *const *choices; /* GW_OPT_ENUM: NULL-terminated; the index is stored */
    unsigned flags;
    const char *help;
} gw_opt_t;

/* A second environment variable for a setting: the name an older product used. */
typedef struct {
    const char *env; /* the setting's own variable */
    const char *alias;
} gw_opt_alias_t;

/* The two logging rows every program has: LOG_LEVEL and LOG_FORMAT (log.h values). */
#define GW_OPTS_LOG_ROWS(type, level_field, format_field)                                          \
    {"log-level", "LOG_LEVEL",        GW_OPT_ENUM, offsetof(type, level_field),         "info", 0, \
     0,           gw_log_level_names, 0,           "error, warn, notice, info or debug"},          \
    {                                                                                              \
        "log-format", "LOG_FORMAT", GW_OPT_ENUM, offsetof(type, format_field), "text", 0, 0,       \
            gw_log_format_names, 0, "text (key=value) or json, one line per event"                 \
    }

typedef struct {
    const char *prog;    /* program name for usage lines and errors */
    const char *summary; /* one paragraph for --help */
    const gw_opt_t *opts;
    size_t n;
    const gw_opt_alias_t *aliases; /* terminated by {NULL, NULL}; NULL: none */
} gw_opts_spec_t;

/* Fills cfg (zeroed first) from defaults, the environment, then argv. Booleans accept
 * true/false, 1/0, yes/no, on/off in any case. A setting and its alias both set to
 * different values is an error naming both. When set is not NULL, set[i] becomes true
 * for every row given in the environment or on the command line. Returns 0, 1 when the
 * caller should exit 0 (--help / --config-doc printed), or -1 with a one-line error
 * naming the setting in err. Arguments not starting with "--" are errors. */
int gw_opts_load(const gw_opts_spec_t *spec, void *cfg, int argc, char **argv, bool *set, char *err,
                 size_t errlen);

/* The row of the given environment variable name (or alias), or NULL. */
const gw_opt_t *gw_opts_find_env(const gw_opts_spec_t *spec, const char *env);
void gw_opts_free(const gw_opts_spec_t *spec, void *cfg);
void gw_opts_print_help(const gw_opts_spec_t *spec, FILE *f);
void gw_opts_print_doc(const gw_opts_spec_t *spec, FILE *f);

#endif
