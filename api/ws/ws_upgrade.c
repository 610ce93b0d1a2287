/*
 * ws_upgrade: checks an upgrade head, finds query arguments, computes the
 * accept key (design in ws_upgrade.h).
 *
 * The front door has already found the head's end and checked the shape
 * of its request line; this parser does not rely on that and checks every
 * byte it uses again, since it is also what the tests and fuzzers feed.
 */
#include "ws_upgrade.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "core/pct.h"

#define GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define KEY_LEN 24

/* The fields the server reads, and how often each came. */
struct fields {
    const char *host, *upgrade, *connection, *key, *version, *origin, *authorization;
    int n_host, n_key, n_version, n_origin, n_authorization;
    bool upgrade_ok, connection_ok;
};

static int refuse(struct ws_upgrade *up, int status, const char *why)
{
    up->error = why;
    return status;
}

/* Cuts the next line out of [*p, end): NUL-terminates it (dropping a CR
 * before the LF) and moves *p past its LF. Returns NULL when no LF is
 * left; *len is the line's length. */
static char *next_line(char **p, char *end, size_t *len)
{
    char *start = *p;
    char *lf = memchr(start, '\n', (size_t)(end - start));

    if (!lf) {
        return NULL;
    }
    char *stop = lf > start && lf[-1] == '\r' ? lf - 1 : lf;
    *stop = '\0';
    *len = (size_t)(stop - start);
    *p = lf + 1;
    return start;
}

/* RFC 9110 5.6.2 tchar. */
static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Whether a comma-separated list holds token (case-insensitive). */
static bool has_token(const char *list, const char *token)
{
    size_t n = strlen(token);

    while (*list) {
        while (*list == ' ' || *list == '\t' || *list == ',') {
            list++;
        }
        const char *start = list;
        while (*list && *list != ',') {
            list++;
        }
        const char *stop = list;
        while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t')) {
            stop--;
        }
        if ((size_t)(stop - start) == n && strncasecmp(start, token, n) == 0) {
            return true;
        }
    }
    return false;
}

static bool is_base64(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* 16 bytes in base64: 22 characters and "==". */
static bool key_ok(const char *key)
{
    if (strlen(key) != KEY_LEN || strcmp(key + KEY_LEN - 2, "==") != 0) {
        return false;
    }
    for (int i = 0; i < KEY_LEN - 2; i++) {
        if (!is_base64((unsigned char)key[i])) {
            return false;
        }
    }
    return true;
}

/* One field line: "name: value", the value trimmed. Returns 0 or -1. */
static int field(char *line, size_t len, struct fields *f)
{
    char *colon = memchr(line, ':', len);

    if (!colon || colon == line) {
        return -1;
    }
    for (char *c = line; c < colon; c++) {
        if (!is_tchar((unsigned char)*c)) {
            return -1; /* whitespace before the colon included (RFC 9112 5.1) */
        }
    }
    for (char *c = colon + 1; c < line + len; c++) {
        unsigned char u = (unsigned char)*c;
        if ((u < 0x20 && u != '\t') || u == 0x7f) {
            return -1;
        }
    }
    *colon = '\0';
    char *v = colon + 1, *stop = line + len;
    while (*v == ' ' || *v == '\t') {
        v++;
    }
    while (stop > v && (stop[-1] == ' ' || stop[-1] == '\t')) {
        *--stop = '\0';
    }
    if (strcasecmp(line, "Host") == 0) {
        f->host = v;
        f->n_host++;
    } else if (strcasecmp(line, "Upgrade") == 0) {
        f->upgrade_ok = f->upgrade_ok || has_token(v, "websocket");
    } else if (strcasecmp(line, "Connection") == 0) {
        f->connection_ok = f->connection_ok || has_token(v, "upgrade");
    } else if (strcasecmp(line, "Sec-WebSocket-Key") == 0) {
        f->key = v;
        f->n_key++;
    } else if (strcasecmp(line, "Sec-WebSocket-Version") == 0) {
        f->version = v;
        f->n_version++;
    } else if (strcasecmp(line, "Origin") == 0) {
        f->origin = v;
        f->n_origin++;
    } else if (strcasecmp(line, "Authorization") == 0) {
        f->authorization = v;
        f->n_authorization++;
    }
    return 0;
}

/* "GET /target HTTP/1.1" cut into its parts; returns 0 or the status. */
static int request_line(char *line, struct ws_upgrade *up)
{
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;

    if (!sp1 || !sp2 || strchr(sp2 + 1, ' ')) {
        return refuse(up, 400, "the request line is not: GET /path HTTP/1.1");
    }
    *sp1 = *sp2 = '\0';
    char *target = sp1 + 1, *version = sp2 + 1;
    if (strcmp(line, "GET") != 0) {
        return refuse(up, 405, "a WebSocket upgrade must be a GET");
    }
    if (strncmp(version, "HTTP/1.", 7) != 0 || version[7] < '1' || version[7] > '9' || version[8]) {
        return refuse(up, 400, "a WebSocket upgrade needs HTTP/1.1");
    }
    if (target[0] != '/') {
        return refuse(up, 400, "the request target must be a path");
    }
    for (const char *c = target; *c; c++) {
        if ((unsigned char)*c < 0x21 || *c == 0x7f) {
            return refuse(up, 400, "a control byte in the URL");
        }
    }
    if (strstr(target, "%00")) {
        return refuse(up, 400, "an escaped NUL (%00) in the URL");
    }
    char *q = strchr(target, '?');
    if (q) {
        *q = '\0';
    }
    up->path = target;
    up->query = q ? q + 1 : "";
    return 0;
}

int ws_upgrade_parse(char *head, size_t len, struct ws_upgrade *up)
{
    struct fields f = {0};
    char *p = head, *end = head + len, *line;
    size_t n;
    int status;

    memset(up, 0, sizeof *up);
    if (memchr(head, '\0', len)) {
        return refuse(up, 400, "a NUL byte in the request head");
    }
    while (p < end && (*p == '\r' || *p == '\n')) {
        p++;
    }
    line = next_line(&p, end, &n);
    if (!line) {
        return refuse(up, 400, "the request head is incomplete");
    }
    status = request_line(line, up);
    if (status) {
        return status;
    }
    for (;;) {
        line = next_line(&p, end, &n);
        if (!line) {
            return refuse(up, 400, "the request head is incomplete");
        }
        if (n == 0) {
            break;
        }
        if (line[0] == ' ' || line[0] == '\t') {
            return refuse(up, 400, "a folded header line (obsolete, RFC 9112 5.2)");
        }
        if (field(line, n, &f) < 0) {
            return refuse(up, 400, "a header line that is not: name: value");
        }
    }
    if (f.n_host != 1) {
        return refuse(up, 400, "an HTTP/1.1 request needs exactly one Host header");
    }
    if (!f.upgrade_ok || !f.connection_ok) {
        return refuse(up, 400,
                      "a WebSocket upgrade needs Upgrade: websocket and "
                      "Connection: Upgrade");
    }
    if (f.n_key != 1 || !key_ok(f.key)) {
        return refuse(up, 400,
                      "a WebSocket upgrade needs one Sec-WebSocket-Key: 16 bytes "
                      "in base64");
    }
    if (f.n_version != 1) {
        return refuse(up, 400, "a WebSocket upgrade needs Sec-WebSocket-Version: 13");
    }
    if (strcmp(f.version, "13") != 0) {
        return refuse(up, 426, "only WebSocket version 13 is spoken");
    }
    if (f.n_origin > 1 || f.n_authorization > 1) {
        return refuse(up, 400, "Origin and Authorization may appear once");
    }
    up->key = f.key;
    up->origin = f.origin;
    up->authorization = f.authorization;
    return 0;
}

/* Decodes value[0..n) into out; -1 when malformed or when it holds a
 * control character (a NUL included). */
static int decode(const char *v, size_t n, char *out, size_t cap)
{
    long len = pct_decode(v, n, out, cap, true);
    for (long i = 0; i < len; i++) {
        unsigned char c = (unsigned char)out[i];
        if (c < 0x20 || c == 0x7f) {
            return -1;
        }
    }
    return len < 0 ? -1 : 1;
}

int ws_upgrade_arg(const struct ws_upgrade *up, const char *name, char *out, size_t cap)
{
    size_t name_len = strlen(name);
    const char *p = up->query;

    if (cap == 0) {
        return -1;
    }
    while (*p) {
        const char *amp = strchr(p, '&');
        const char *stop = amp ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *name_end = eq ? eq : stop;
        if ((size_t)(name_end - p) == name_len && memcmp(p, name, name_len) == 0) {
            const char *v = eq ? eq + 1 : stop;
            return decode(v, (size_t)(stop - v), out, cap);
        }
        p = amp ? amp + 1 : stop;
    }
    return 0;
}

int ws_upgrade_accept(const char *key, char out[WS_UPGRADE_ACCEPT_LEN + 1])
{
    unsigned char text[KEY_LEN + sizeof GUID], md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    size_t n = strlen(key);

    if (n > KEY_LEN) {
        n = KEY_LEN; /* parse checked it; never more than a key's length */
    }
    memcpy(text, key, n);
    memcpy(text + n, GUID, sizeof GUID - 1);
    if (EVP_Digest(text, n + sizeof GUID - 1, md, &md_len, EVP_sha1(), NULL) != 1 || md_len != 20) {
        out[0] = '\0';
        return -1;
    }
    EVP_EncodeBlock((unsigned char *)out, md, 20);
    out[WS_UPGRADE_ACCEPT_LEN] = '\0';
    return 0;
}
