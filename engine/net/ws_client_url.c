/*
 * ws_client_url: the addresses ws_client is given, parsed without sockets.
 *
 * libcurl's URL parser (curl_url) does the parsing, as it does for x.http:
 * one parser for every URL an operator gives. This file turns its parts
 * into what libwebsockets needs separately: the host to resolve, the port,
 * the path with its query, and the Host and Origin values (Host also names
 * the certificate to expect). A proxy URL becomes the
 * "[user:pass@]host:port" form libwebsockets parses itself. User names in
 * WebSocket URLs, other schemes and control characters are refused rather
 * than guessed at. Errors never repeat the URL: a query may carry a token,
 * a proxy URL a password.
 */
#include "ws_client_int.h"

#include <curl/curl.h>
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

/* One part of a parsed URL, or NULL when it is absent; curl_free it. */
static char *part(CURLU *u, CURLUPart what)
{
    char *out = NULL;
    return curl_url_get(u, what, &out, 0) == CURLUE_OK ? out : NULL;
}

/* Parses url (scheme given, or `guess` for http) into a new handle; NULL
 * when libcurl refuses it. */
static CURLU *parse(const char *url, bool guess)
{
    CURLU *u = curl_url();
    unsigned flags = CURLU_NON_SUPPORT_SCHEME | (guess ? CURLU_GUESS_SCHEME : 0);
    if (u && curl_url_set(u, CURLUPART_URL, url, flags) != CURLUE_OK) {
        curl_url_cleanup(u);
        return NULL;
    }
    return u;
}

/* The port of u, or dflt when the URL names none; 0 when it is not 1..65535. */
static int port_of(CURLU *u, int dflt)
{
    char *text = part(u, CURLUPART_PORT);
    long port = dflt;
    if (text) {
        char *end;
        port = strtol(text, &end, 10);
        if (*end || port < 1 || port > 65535) {
            port = 0;
        }
        curl_free(text);
    }
    return (int)port;
}

/* host_header: the host (brackets kept for IPv6) and the port only when it
 * differs from the scheme's, as browsers do; libwebsockets strips ":port"
 * before it checks the certificate. */
static void fill_names(struct ws_url *out, const char *host)
{
    size_t n = strlen(host);
    if (host[0] == '[' && n > 2) {
        snprintf(out->host, sizeof out->host, "%.*s", (int)(n - 2), host + 1);
    } else {
        snprintf(out->host, sizeof out->host, "%s", host);
    }
    int len = snprintf(out->host_header, sizeof out->host_header, "%s", host);
    if (out->port != (out->tls ? 443 : 80)) {
        snprintf(out->host_header + len, sizeof out->host_header - (size_t)len, ":%d", out->port);
    }
    snprintf(out->origin, sizeof out->origin, "%s://%s", out->tls ? "https" : "http",
             out->host_header);
}

int ws_url_parse(const char *url, struct ws_url *out, char *err, size_t errlen)
{
    char *scheme = NULL, *user = NULL, *host = NULL, *path = NULL, *query = NULL;
    CURLU *u = NULL;
    int rc = -1;

    memset(out, 0, sizeof *out);
    if (!url || !url_chars_ok(url)) {
        snprintf(err, errlen, "url: missing, or has spaces or control characters");
        return -1;
    }
    if (!(u = parse(url, false)) || !(scheme = part(u, CURLUPART_SCHEME))) {
        snprintf(err, errlen, "url: not a URL");
        goto done;
    }
    if (strcasecmp(scheme, "ws") != 0 && strcasecmp(scheme, "wss") != 0) {
        snprintf(err, errlen, "url: not ws:// or wss://");
        goto done;
    }
    out->tls = strcasecmp(scheme, "wss") == 0;
    if ((user = part(u, CURLUPART_USER))) {
        snprintf(err, errlen, "url: user names and passwords in the URL are not supported");
        goto done;
    }
    host = part(u, CURLUPART_HOST);
    if (!host || !host[0] || strlen(host) >= WS_HOST_MAX - 8) {
        snprintf(err, errlen, "url: missing or overlong host");
        goto done;
    }
    out->port = port_of(u, out->tls ? 443 : 80);
    if (!out->port) {
        snprintf(err, errlen, "url: bad port");
        goto done;
    }
    fill_names(out, host);
    path = part(u, CURLUPART_PATH);
    query = part(u, CURLUPART_QUERY);
    size_t n = (path ? strlen(path) : 1) + (query ? strlen(query) + 1 : 0) + 1;
    out->path = xmalloc(n);
    snprintf(out->path, n, "%s%s%s", path ? path : "/", query ? "?" : "", query ? query : "");
    rc = 0;
done:
    curl_free(scheme);
    curl_free(user);
    curl_free(host);
    curl_free(path);
    curl_free(query);
    curl_url_cleanup(u);
    return rc;
}

void ws_url_free(struct ws_url *url)
{
    free(url->path);
    url->path = NULL;
}

int ws_proxy_parse(const char *url, char **out, int *port_out, char *err, size_t errlen)
{
    char *scheme = NULL, *host = NULL, *user = NULL, *pass = NULL, *portstr = NULL;
    CURLU *u = NULL;
    int rc = -1;

    if (!url_chars_ok(url) || !(u = parse(url, true)) || !(scheme = part(u, CURLUPART_SCHEME)) ||
        strcasecmp(scheme, "http") != 0) {
        snprintf(err, errlen, "proxy: the WebSocket client supports only http:// proxies, as "
                              "http://[user:password@]host:port");
        goto done;
    }
    host = part(u, CURLUPART_HOST);
    portstr = part(u, CURLUPART_PORT);
    int port = portstr ? port_of(u, 0) : 0;
    if (!host || !host[0] || !port) {
        snprintf(err, errlen, "proxy: expected http://[user:password@]host:port");
        goto done;
    }
    user = part(u, CURLUPART_USER);
    pass = part(u, CURLUPART_PASSWORD);
    size_t n = strlen(host) + (user ? strlen(user) : 0) + (pass ? strlen(pass) : 0) + 16;
    *out = xmalloc(n);
    snprintf(*out, n, "%s%s%s%s%s:%d", user ? user : "", pass ? ":" : "", pass ? pass : "",
             user ? "@" : "", host, port);
    *port_out = port;
    rc = 0;
done:
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    if (pass) {
        explicit_bzero(pass, strlen(pass));
    }
    curl_free(pass);
    curl_free(portstr);
    curl_url_cleanup(u);
    return rc;
}
