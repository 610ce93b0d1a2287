/*
 * embed: the API's static files, compiled into the binary by api/embed.cmake
 * (generated embed_assets.c), so the service serves them with no file beside
 * it. Each array holds the file's bytes followed by a NUL that the length
 * leaves out. Read-only; any thread.
 */
#ifndef RX_EMBED_H
#define RX_EMBED_H

#include <stddef.h>

/* api/pages/openapi.json: the OpenAPI 3.1 document (GET /openapi.json). */
extern const unsigned char api_asset_openapi_json[];
extern const size_t api_asset_openapi_json_len;

/* api/pages/docs_page.html: the reference page rendered from it (GET /docs). */
extern const unsigned char api_asset_docs_page_html[];
extern const size_t api_asset_docs_page_html_len;

/* api/pages/index.html: the page at GET /. */
extern const unsigned char api_asset_index_html[];
extern const size_t api_asset_index_html_len;

#endif
