#include "opts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"

static int set_value(void *cfg, const gw_opt_t *o, const char *val, const char *source, char *err,
                     size_t errlen)
{
    char *base = (char *)cfg;
    const char *shown = (o->flags & GW_OPT_SECRET) ? "(hidden)" : val;

    switch (o->type) {
    case GW_OPT_INT: {
        char *end;
        errno = 0;
        long v = strtol(val, &end, 10);
        if (errno || end == val || *end != '\0' || v < o->min || v > o->max) {
            snprintf(err, errlen, "invalid %s (--%s) from %s: '%s' is not an integer in [%ld, %ld]",
                     o->env, o->flag, source, shown, o->min, o->max);
            return -1;
        }
        *(long *)(base + o->off) = v;
        return 0;
    }
    case GW_OPT_BOOL: {
        bool v;
        if (!strcasecmp(val, "true") || !strcmp(val, "1") || !strcasecmp(val, "yes") ||
            !strcasecmp(val, "on"))
            v = true;
        else if (!strcasecmp(val, "false") || !strcmp(val, "0") || !strcasecmp(val, "no") ||
                 !strcasecmp(val, "off"))
            v = false;
        else {
            snprintf(err, errlen, "invalid %s (--%s) from %s: '%s' is not true or false", o->env,
                     o->flag, source, shown);
            return -1;
        }
        *(bool *)(base + o->off) = v;
        return 0;
    }
    case GW_OPT_IGNORED: return 0;
    case GW_OPT_STR: {
        char **slot = (char **)(base + o->off);
        if (strlen(val) > 4096) {
            snprintf(err, errlen, "invalid %s (--%s) from %s: longer than 4096 bytes", o->env,
                     o->flag, source);
            return -1;
        }
        free(*slot);
        *slot = gw_xstrdup(val);
        return 0;
    }
    case GW_OPT_ENUM:
        for (int i = 0; o->choices[i]; i++) {
            if (!strcmp(val, o->choices[i])) {
                *(int *)(base + o->off) = i;
                return 0;
            }
        }
        snprintf(err, errlen, "invalid %s (--%s) from %s: '%s' is not one of", o->env, o->flag,
                 source, shown);
        for (int i = 0; o->choices[i]; i++) {
            size_t n = strlen(err);
            snprintf(err + n, errlen - n, "%s%s", i ? ", " : " ", o->choices[i]);
        }
        return -1;
    }
    return -1;
}

static const gw_opt_t *find_flag(const gw_opts_spec_t *sp, const char *name, size_t len)
{
    for (size_t i = 0; i < sp->n; i++)
        if (strlen(sp->opts[i].flag) == len && !strncmp(sp->opts[i].flag, name, len))
            return &sp->opts[i];
    return NULL;
}

static const char *alias_of(const gw_opts_spec_t *sp, const gw_opt_t *o)
{
    for (const gw_opt_alias_t *a = sp->aliases; a && a->env; a++)
        if (!strcmp(a->env, o->env)) return a->alias;
    return NULL;
}

const gw_opt_t *gw_opts_find_env(const gw_opts_spec_t *sp, const char *env)
{
    for (size_t i = 0; i < sp->n; i++) {
        const char *alias = alias_of(sp, &sp->opts[i]);
        if (!strcmp(sp->opts[i].env, env) || (alias && !strcmp(alias, env))) return &sp->opts[i];
    }
    return NULL;
}

/* The environment's value for a row: its own variable or its alias, which must agree. */
static int env_value(const gw_opts_spec_t *sp, const gw_opt_t *o, const char **out, char *err,
                     size_t errlen)
{
    const char *alias = alias_of(sp, o);
    const char *v = getenv(o->env), *a = alias ? getenv(alias) : NULL;
    if (v && a && strcmp(v, a) != 0) {
        snprintf(err, errlen, "invalid %s: set together with %s to a different value; set one",
                 alias, o->env);
        return -1;
    }
    *out = v ? v : a;
    return 0;
}

int gw_opts_load(const gw_opts_spec_t *sp, void *cfg, int argc, char **argv, bool *set, char *err,
                 size_t errlen)
{
    for (size_t i = 0; i < sp->n; i++) {
        if (set) set[i] = false;
        if (set_value(cfg, &sp->opts[i], sp->opts[i].def, "default", err, errlen) < 0) return -1;
    }

    for (size_t i = 0; i < sp->n; i++) {
        const char *v;
        if (env_value(sp, &sp->opts[i], &v, err, errlen) < 0) return -1;
        if (!v) continue;
        if (set_value(cfg, &sp->opts[i], v, "environment", err, errlen) < 0) return -1;
        if (set) set[i] = true;
    }

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            gw_opts_print_help(sp, stdout);
            return 1;
        }
        if (!strcmp(a, "--config-doc")) {
            gw_opts_print_doc(sp, stdout);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            snprintf(err, errlen, "unexpected argument '%s' (see --help)", a);
            return -1;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const gw_opt_t *o = find_flag(sp, name, nlen);
        if (!o) {
            snprintf(err, errlen, "unknown option '--%.*s' (see --help)", (int)nlen, name);
            return -1;
        }
        const char *val;
        if (eq)
            val = eq + 1;
        else if (o->type == GW_OPT_BOOL && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0))
            val = "true";
        else if (i + 1 < argc)
            val = argv[++i];
        else {
            snprintf(err, errlen, "option --%s needs a value", o->flag);
            return -1;
        }
        if (set_value(cfg, o, val, "command line", err, errlen) < 0) return -1;
        if (set) set[o - sp->opts] = true;
    }
    return 0;
}

void gw_opts_free(const gw_opts_spec_t *sp, void *cfg)
{
    for (size_t i = 0; i < sp->n; i++) {
        if (sp->opts[i].type != GW_OPT_STR) continue;
        char **slot = (char **)((char *)cfg + sp->opts[i].off);
        free(*slot);
        *slot = NULL;
    }
}

static void describe_bounds(const gw_opt_t *o, char *out, size_t n)
{
    out[0] = '\0';
    if (o->type == GW_OPT_INT)
        snprintf(out, n, "%ld..%ld", o->min, o->max);
    else if (o->type == GW_OPT_BOOL)
        snprintf(out, n, "true|false");
    else if (o->type == GW_OPT_IGNORED)
        snprintf(out, n, "ignored");
    else if (o->type == GW_OPT_ENUM) {
        for (int i = 0; o->choices[i]; i++) {
            size_t l = strlen(out);
            snprintf(out + l, n - l, "%s%s", i ? "|" : "", o->choices[i]);
        }
    }
}

void gw_opts_print_help(const gw_opts_spec_t *sp, FILE *f)
{
    fprintf(f, "usage: %s [--flag value | --flag=value]...\n\n%s\n\n", sp->prog, sp->summary);
    for (size_t i = 0; i < sp->n; i++) {
        const gw_opt_t *o = &sp->opts[i];
        char bounds[96];
        describe_bounds(o, bounds, sizeof bounds);
        const char *alias = alias_of(sp, o);
        fprintf(f, "  --%-26s %s%s%s\n      %s (default: %s%s%s)\n", o->flag, o->env,
                alias ? ", alias " : "", alias ? alias : "", o->help, o->def[0] ? o->def : "empty",
                bounds[0] ? "; " : "", bounds);
    }
    fprintf(f, "\n  --help                       this text\n"
               "  --config-doc                 the table as Markdown (docs/CONFIG.md)\n");
}

void gw_opts_print_doc(const gw_opts_spec_t *sp, FILE *f)
{
    fprintf(f,
            "## %s\n\n"
            "Generated by `%s --config-doc` from the program's settings table; a test keeps "
            "this file in sync.\nPrecedence: default < environment < flag. A bad value exits "
            "with code 2 and names the setting.\n\n"
            "| environment | flag | default | bounds | meaning |\n"
            "|---|---|---|---|---|\n",
            sp->prog, sp->prog);
    for (size_t i = 0; i < sp->n; i++) {
        const gw_opt_t *o = &sp->opts[i];
        char bounds[96];
        describe_bounds(o, bounds, sizeof bounds);
        const char *alias = alias_of(sp, o);
        fprintf(f, "| `%s`%s%s%s | `--%s` | `%s` | ", o->env, alias ? " (alias `" : "",
                alias ? alias : "", alias ? "`)" : "", o->flag, o->def);
        for (const char *c = bounds; *c; c++) /* a bare | would split the table cell */
            fputs(*c == '|' ? "\\|" : (char[]){*c, 0}, f);
        fprintf(f, " | %s |\n", o->help);
    }
}
