/*
 * ws_client_url: the addresses ws_client is given, parsed without sockets.
 *
 * A ws:// or wss:// URL becomes what libwebsockets needs separately: the
 * host to resolve, the port, the path with its query, and the Host and
 * Origin values (Host also names the certificate to expect). A proxy URL
 * becomes the "[user:pass@]host:port" form libwebsockets parses itself.
 * User names in WebSocket URLs, other schemes and control characters are
 * refused rather than guessed at. Errors never repeat the URL: a query may
 * carry a token, a proxy URL a password.
 */
#include "ws_client_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/xalloc.h"

static bool url_chars_ok(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s <= ' ' || *s == 0x7f) {
            return false;
        }
    }
    return true;
}

int ws_url_parse(const char *url, struct ws_url *out, char *err, size_t errlen)
{
    const char *p, *auth_end, *host_end;
    size_t host_len;

    memset(out, 0, sizeof *out);
    if (!url || !url_chars_ok(url)) {
        snprintf(err, errlen, "url: missing, or has spaces or control characters");
        return -1;
    }
    if (strncasecmp(url, "ws://", 5) == 0) {
        p = url + 5;
    } else if (strncasecmp(url, "wss://", 6) == 0) {
        out->tls = true;
        p = url + 6;
    } else {
        snprintf(err, errlen, "url: not ws:// or wss://");
        return -1;
    }
    out->port = out->tls ? 443 : 80;
    auth_end = p + strcspn(p, "/?#");
    if (memchr(p, '@', (size_t)(auth_end - p))) {
        snprintf(err, errlen, "url: user names and passwords in the URL are not supported");
        return -1;
    }
    if (*p == '[') {
        host_end = memchr(p, ']', (size_t)(auth_end - p));
        if (!host_end) {
            snprintf(err, errlen, "url: unterminated [IPv6 address]");
            return -1;
        }
        host_len = (size_t)(host_end - p - 1);
        memcpy(out->host, p + 1, host_len < WS_HOST_MAX ? host_len : 0);
        host_end++;
    } else {
        host_end = p + strcspn(p, ":/?#");
        host_len = (size_t)(host_end - p);
        memcpy(out->host, p, host_len < WS_HOST_MAX ? host_len : 0);
    }
    if (host_len == 0 || host_len >= WS_HOST_MAX - 8) {
        snprintf(err, errlen, "url: missing or overlong host");
        return -1;
    }
    if (host_end < auth_end) {
        char *end;
        long port;
        if (*host_end != ':' || host_end + 1 == auth_end) {
            snprintf(err, errlen, "url: bad port");
            return -1;
        }
        port = strtol(host_end + 1, &end, 10);
        if (end != auth_end || port < 1 || port > 65535) {
            snprintf(err, errlen, "url: bad port");
            return -1;
        }
        out->port = (int)port;
    }
    /* Host keeps the brackets and names the port only when it differs from
     * the scheme's, as browsers do; libwebsockets strips ":port" before it
     * checks the certificate. */
    bool v6 = strchr(out->host, ':') != NULL;
    int n = snprintf(out->host_header, sizeof out->host_header, v6 ? "[%s]" : "%s", out->host);
    if (out->port != (out->tls ? 443 : 80)) {
        snprintf(out->host_header + n, sizeof out->host_header - (size_t)n, ":%d", out->port);
    }
    snprintf(out->origin, sizeof out->origin, "%s://%s", out->tls ? "https" : "http",
             out->host_header);
    size_t path_len = strcspn(auth_end, "#");
    out->path = xmalloc(path_len + 2);
    if (*auth_end == '/') {
        memcpy(out->path, auth_end, path_len);
        out->path[path_len] = '\0';
    } else {
        out->path[0] = '/';
        memcpy(out->path + 1, auth_end, path_len);
        out->path[path_len + 1] = '\0';
    }
    return 0;
}

void ws_url_free(struct ws_url *url)
{
    free(url->path);
    url->path = NULL;
}

int ws_proxy_parse(const char *url, char **out, int *port_out, char *err, size_t errlen)
{
    const char *p = url, *hostport, *colon;
    size_t n;
    long port = 0;

    if (strncasecmp(p, "http://", 7) == 0) {
        p += 7;
    } else if (strstr(p, "://")) {
        snprintf(err, errlen, "proxy: the WebSocket client supports only http:// proxies");
        return -1;
    }
    n = strcspn(p, "/");
    hostport = p;
    for (const char *q = p; q < p + n; q++) {
        if (*q == '@') {
            hostport = q + 1; /* the last one, as libwebsockets reads it */
        }
    }
    colon = hostport;
    if (*hostport == '[') {
        colon = memchr(hostport, ']', n - (size_t)(hostport - p));
    }
    colon = colon ? memchr(colon, ':', n - (size_t)(colon - p)) : NULL;
    if (colon) {
        char *end;
        port = strtol(colon + 1, &end, 10);
        if (end != p + n) {
            port = 0;
        }
    }
    if (!url_chars_ok(p) || !colon || colon == hostport || port < 1 || port > 65535) {
        snprintf(err, errlen, "proxy: expected http://[user:password@]host:port");
        return -1;
    }
    *out = xstrndup(p, n);
    *port_out = (int)port;
    return 0;
}
