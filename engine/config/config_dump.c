/*
 * config_dump: the config as text, for people.
 *
 * config_dump() prints the effective config one key per line for `explorer
 * --check-config`; secrets (token lists, passwords inside URLs) are printed
 * as <redacted>, never in clear, because that output ends up in terminals,
 * CI logs and bug reports. config_each_key() lists the schema for the docs
 * table and the test that checks docs/operations.md names every key. Both
 * loop over the schema tables and know no key by name.
 */
#include "config_schema.h"

#include <string.h>

static void dump_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') {
            fprintf(f, "\\%c", *s);
        } else if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            fprintf(f, "\\%03d", (unsigned char)*s);
        } else {
            fputc(*s, f);
        }
    }
    fputc('"', f);
}

static void dump_value(FILE *f, const struct config_key *k, const void *base)
{
    const char *s;
    char buf[1024];
    char **items;
    size_t n;

    switch (k->type) {
    case CONFIG_BOOL:
        fputs(*CONFIG_FIELD(base, k->offset, bool) ? "true" : "false", f);
        break;
    case CONFIG_INT:
        if (*CONFIG_FIELD(base, k->offset, int64_t) < 0 && !k->def) {
            fputs("nil", f);
        } else {
            fprintf(f, "%lld", (long long)*CONFIG_FIELD(base, k->offset, int64_t));
        }
        break;
    case CONFIG_NUM:
        if (*CONFIG_FIELD(base, k->offset, double) < 0 && !k->def) {
            fputs("nil", f);
        } else {
            config_format_double(*CONFIG_FIELD(base, k->offset, double), buf, sizeof(buf));
            fputs(buf, f);
        }
        break;
    case CONFIG_STR:
        s = *CONFIG_FIELD(base, k->offset, char *);
        if (s && (k->flags & CONFIG_URL_CREDS)) {
            config_redact_url(s, buf, sizeof(buf));
            s = buf;
        }
        if (s) {
            dump_string(f, s);
        } else {
            fputs("nil", f);
        }
        break;
    case CONFIG_ENUM:
        dump_string(f, k->names[*CONFIG_FIELD(base, k->offset, int)]);
        break;
    case CONFIG_LIST:
        items = *CONFIG_FIELD(base, k->offset, char **);
        n = *CONFIG_FIELD(base, k->aux, size_t);
        fputs(n ? "{ " : "{}", f);
        for (size_t i = 0; i < n; i++) {
            fputs(i ? ", " : "", f);
            if (k->flags & CONFIG_SECRET) {
                fputs("<redacted>", f);
            } else {
                dump_string(f, items[i]);
            }
        }
        fputs(n ? " }" : "", f);
        break;
    case CONFIG_JSON:
        fputs(*CONFIG_FIELD(base, k->offset, char *), f);
        break;
    case CONFIG_TABLE:
    case CONFIG_OPERATORS:
        break;
    }
}

static void dump_keys(FILE *f, const struct config_key *keys, const void *base, const char *prefix)
{
    for (const struct config_key *k = keys; k->name; k++) {
        const struct config_operator *ops;
        size_t n;
        char path[256];

        snprintf(path, sizeof(path), "%s%s", prefix, k->name);
        if (k->type == CONFIG_TABLE) {
            strncat(path, ".", sizeof(path) - strlen(path) - 1);
            dump_keys(f, k->sub, CONFIG_FIELD(base, k->offset, char), path);
            continue;
        }
        if (k->type == CONFIG_OPERATORS) {
            ops = *CONFIG_FIELD(base, k->offset, struct config_operator *);
            n = *CONFIG_FIELD(base, k->aux, size_t);
            if (n == 0) {
                fprintf(f, "%s = {}\n", path);
            }
            for (size_t i = 0; i < n; i++) {
                char sub[384];

                snprintf(sub, sizeof(sub), "%s.%s.", path, ops[i].name);
                dump_keys(f, k->sub, &ops[i], sub);
            }
            continue;
        }
        fprintf(f, "%s = ", path);
        dump_value(f, k, base);
        fputc('\n', f);
    }
}

void config_dump(const struct config *cfg, FILE *f)
{
    fprintf(f, "-- effective config: %s, after environment overrides\n", cfg->path);
    dump_keys(f, config_root_keys, cfg, "");
}

/* The default as the docs show it. */
static void describe_default(const struct config_key *k, char *buf, size_t n)
{
    const char *p = k->def;

    if (!p) {
        snprintf(buf, n, "%s", k->unset ? k->unset : k->type == CONFIG_LIST ? "{}" : "nil");
    } else if (k->type == CONFIG_LIST) {
        snprintf(buf, n, "{");
        while (*p) {
            size_t len = strcspn(p, ",");

            snprintf(buf + strlen(buf), n - strlen(buf), "%s\"%.*s\"", p == k->def ? "" : ", ",
                     (int)len, p);
            p += len + (p[len] == ',');
        }
        strncat(buf, "}", n - strlen(buf) - 1);
    } else if (k->type == CONFIG_STR || k->type == CONFIG_ENUM) {
        snprintf(buf, n, "\"%s\"", p);
    } else {
        snprintf(buf, n, "%s", p);
    }
}

static void each_key(const struct config_key *keys, const char *prefix, config_key_fn fn, void *arg)
{
    for (const struct config_key *k = keys; k->name; k++) {
        char path[128], type[128], def[256], sub[160];
        struct config_key_info info = {.path = path, .type = type, .def = def, .help = k->help};

        snprintf(path, sizeof(path), "%s%s", prefix, k->name);
        snprintf(type, sizeof(type), "%s", config_type_name(k));
        if (k->type == CONFIG_ENUM) {
            snprintf(type, sizeof(type), "one of");
            for (int i = 0; k->names[i]; i++) {
                snprintf(type + strlen(type), sizeof(type) - strlen(type), "%s \"%s\"",
                         i ? "," : "", k->names[i]);
            }
        }
        describe_default(k, def, sizeof(def));
        info.table = k->type == CONFIG_TABLE || k->type == CONFIG_OPERATORS;
        if (k->type == CONFIG_TABLE) {
            def[0] = '\0';
        }
        fn(&info, arg);
        if (info.table) {
            snprintf(sub, sizeof(sub), k->type == CONFIG_TABLE ? "%s." : "%s.<name>.", path);
            each_key(k->sub, sub, fn, arg);
        }
    }
}

void config_each_key(config_key_fn fn, void *arg)
{
    each_key(config_root_keys, "", fn, arg);
}
