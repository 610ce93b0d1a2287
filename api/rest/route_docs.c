/*
 * route_docs: the documents the service serves about itself — the OpenAPI
 * document (GET /openapi.json), the reference page rendered from it
 * (GET /docs) and the page at GET /.
 *
 * All three are files in api/ compiled into the binary (embed.h), so a
 * deployed binary needs nothing beside it and the pages load nothing from
 * elsewhere: no CDN, no font service. The reference page is a little
 * vanilla JavaScript that fetches openapi.json and renders it, so the
 * document stays the one source of truth. A Content-Security-Policy that
 * allows only this origin makes that a property the browser enforces.
 *
 * Threads: a libmicrohttpd worker; reads constant data only.
 */
#include "route.h"

#include "pages/embed.h"

/* Scripts and styles are inline; fetches and WebSockets go to this origin. */
#define DOCS_CSP                                                                                   \
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "                  \
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'"

static void send_asset(struct api_resp *resp, const char *content_type, const unsigned char *bytes,
                       size_t len)
{
    resp->status = 200;
    resp->content_type = content_type;
    jbuf_reset(&resp->body);
    jbuf_add(&resp->body, (const char *)bytes, len);
    api_add_header(resp, "Cache-Control", "no-cache");
}

static void send_page(struct api_resp *resp, const unsigned char *bytes, size_t len)
{
    send_asset(resp, "text/html; charset=utf-8", bytes, len);
    api_add_header(resp, "Content-Security-Policy", "%s", DOCS_CSP);
    api_add_header(resp, "X-Content-Type-Options", "nosniff");
}

void api_route_openapi(struct api_req *req, struct api_resp *resp)
{
    send_asset(resp, "application/json", api_asset_openapi_json, api_asset_openapi_json_len);
}

void api_route_docs(struct api_req *req, struct api_resp *resp)
{
    send_page(resp, api_asset_docs_page_html, api_asset_docs_page_html_len);
}

void api_route_page(struct api_req *req, struct api_resp *resp)
{
    send_page(resp, api_asset_index_html, api_asset_index_html_len);
}
