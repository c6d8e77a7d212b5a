/* page.c: GET / -- the chat page (src/server/web/chat.html, issue 16), compiled into the binary
 * by src/server/web/embed.cmake together with its Content-Security-Policy: only the page's own
 * inline style and script (by SHA-256) run, requests go only to this origin, no images, frames
 * or forms elsewhere. The page never inserts model output as HTML; the policy is the second
 * wall should that ever change. */
#include <microhttpd.h>
#include <stddef.h>

#include "server/server.h"

extern const unsigned char srv_page_html[];
extern const size_t srv_page_html_len;
extern const char srv_page_csp[];

int srv_chat_page(srv *s, srv_conn *c, struct MHD_Connection *mc) {
    (void)s;
    struct MHD_Response *r = MHD_create_response_from_buffer(srv_page_html_len, (void *)srv_page_html,
                                                             MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
    MHD_add_response_header(r, "Content-Security-Policy", srv_page_csp);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    int ok = MHD_queue_response(mc, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    srv_conn_set_status(c, 200);
    return ok;
}
