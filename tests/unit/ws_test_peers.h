/*
 * ws_test_peers: small blocking peers for the WebSocket client tests.
 *
 * A client for the fake exchange's control API, a listener that never
 * answers, a one-shot server that keeps the request head it was sent and
 * answers 403, and a one-connection HTTP CONNECT proxy. The servers run on
 * a thread of their own (blocking sockets), loopback only.
 */
#ifndef RX_WS_TEST_PEERS_H
#define RX_WS_TEST_PEERS_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fakex_proc.h"

/* Blocking HTTP/1.1 to the fake exchange's control API; the status, or -1. */
static inline int fx_request(const struct fakex_proc *fx, const char *method, const char *path,
                             const char *body, char *out, size_t outlen)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fx->port)};
    char req[2048];
    size_t got = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0), status = -1;

    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     method, path, strlen(body), body);
    if (write(fd, req, (size_t)n) == n) {
        ssize_t k;
        while (got < outlen - 1 && (k = read(fd, out + got, outlen - 1 - got)) > 0) {
            got += (size_t)k;
        }
    }
    out[got] = '\0';
    close(fd);
    sscanf(out, "HTTP/1.1 %d", &status);
    return status;
}

/* A number from the stats JSON of an exchange, or -1. */
static inline long fx_stat(const struct fakex_proc *fx, const char *ex, const char *key)
{
    char path[128], out[8192], needle[64];
    snprintf(path, sizeof path, "/_fakex/%s/stats", ex);
    if (fx_request(fx, "GET", path, "", out, sizeof out) != 200) {
        return -1;
    }
    snprintf(needle, sizeof needle, "\"%s\":", key);
    const char *p = strstr(out, needle);
    return p ? strtol(p + strlen(needle), NULL, 10) : -1;
}

/* A loopback listener that never accepts: connections wait in the backlog,
 * so a WebSocket handshake is never answered. The fd, or -1. */
static inline int silent_listener(int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 8) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

/* One-shot HTTP server on a thread: keeps the request head, answers 403. */
struct capture {
    int fd;
    char head[4096];
};

static inline void *capture_main(void *arg)
{
    struct capture *c = arg;
    size_t got = 0;
    int conn = accept(c->fd, NULL, NULL);
    if (conn < 0) {
        return NULL;
    }
    while (got < sizeof c->head - 1 && !strstr(c->head, "\r\n\r\n")) {
        ssize_t k = read(conn, c->head + got, sizeof c->head - 1 - got);
        if (k <= 0) {
            break;
        }
        got += (size_t)k;
        c->head[got] = '\0';
    }
    static const char answer[] = "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n"
                                 "Connection: close\r\n\r\n";
    if (write(conn, answer, sizeof answer - 1) < 0) {
        perror("capture write");
    }
    close(conn);
    return NULL;
}

/* A one-connection HTTP CONNECT proxy on a thread, loopback only. */
struct proxy {
    int fd;
    char request[256];
};

static inline void relay(int a, int b)
{
    struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
    char buf[16384];

    while (poll(p, 2, 10000) > 0) {
        for (int i = 0; i < 2; i++) {
            if (p[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t n = read(p[i].fd, buf, sizeof buf);
                if (n <= 0 || write(p[1 - i].fd, buf, (size_t)n) != n) {
                    return;
                }
            }
        }
    }
}

static inline void *proxy_main(void *arg)
{
    struct proxy *px = arg;
    char head[2048] = "";
    size_t got = 0;
    int port = 0, up = -1;
    int c = accept(px->fd, NULL, NULL);

    if (c < 0) {
        return NULL;
    }
    while (got < sizeof head - 1 && !strstr(head, "\r\n\r\n")) {
        ssize_t k = read(c, head + got, sizeof head - 1 - got);
        if (k <= 0) {
            break;
        }
        got += (size_t)k;
        head[got] = '\0';
    }
    snprintf(px->request, sizeof px->request, "%.*s", (int)strcspn(head, "\r"), head);
    if (sscanf(head, "CONNECT 127.0.0.1:%d ", &port) == 1) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        up = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(up, (struct sockaddr *)&sa, sizeof sa) != 0) {
            close(up);
            up = -1;
        }
    }
    static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    static const char bad[] = "HTTP/1.1 502 Bad Gateway\r\n\r\n";
    if (up >= 0 && write(c, ok, sizeof ok - 1) == (ssize_t)(sizeof ok - 1)) {
        relay(c, up);
    } else if (write(c, bad, sizeof bad - 1) < 0) {
        perror("proxy write");
    }
    if (up >= 0) {
        close(up);
    }
    close(c);
    return NULL;
}

#endif
