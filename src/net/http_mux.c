/*
 * http_mux.c - goro_http_mux: route requests by path (Go's ServeMux rules
 * without host patterns or redirects).
 *
 * Owns: the route table, an array kept sorted by pattern length, longest
 * first, so the first match is the longest one. A pattern ending in '/' is
 * a subtree (prefix match), any other pattern matches exactly.
 *
 * Locking: an RWMutex; routing takes it shared, registration exclusive, so
 * handlers may be registered while the mux serves. Handlers run after the
 * lock is released (a handler may register routes itself).
 */
#include <stdlib.h>
#include <string.h>

#include "goro.h"

typedef struct route {
    char *pattern;
    size_t len;
    bool subtree;
    goro_http_handler handler;
    void *arg;
} route;

struct goro_http_mux {
    goro_rwmutex lock;
    route *routes; /* sorted by len, descending */
    size_t n, cap;
};

int goro_http_mux_create(goro_http_mux **out)
{
    if (!out)
        return -EINVAL;
    goro_http_mux *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    *out = m;
    return 0;
}

void goro_http_mux_free(goro_http_mux *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++)
        free(m->routes[i].pattern);
    if (m->routes) /* never free(NULL): see free_nn in http_server.c */
        free(m->routes);
    free(m);
}

int goro_http_mux_handle(goro_http_mux *m, const char *pattern, goro_http_handler handler,
                         void *arg)
{
    if (!m || !pattern || pattern[0] != '/' || !handler)
        return -EINVAL;
    size_t len = strlen(pattern);
    char *copy = malloc(len + 1);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, pattern, len + 1);
    int rc = goro_rwmutex_lock(&m->lock);
    if (rc) {
        free(copy);
        return rc;
    }
    size_t at = m->n;
    for (size_t i = 0; i < m->n; i++) {
        if (m->routes[i].len == len && memcmp(m->routes[i].pattern, pattern, len) == 0) {
            rc = -EEXIST;
            goto out;
        }
        if (m->routes[i].len < len && at == m->n)
            at = i;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 8;
        route *r = realloc(m->routes, cap * sizeof *r);
        if (!r) {
            rc = -ENOMEM;
            goto out;
        }
        m->routes = r;
        m->cap = cap;
    }
    memmove(m->routes + at + 1, m->routes + at, (m->n - at) * sizeof *m->routes);
    m->routes[at] = (route){.pattern = copy,
                            .len = len,
                            .subtree = pattern[len - 1] == '/',
                            .handler = handler,
                            .arg = arg};
    m->n++;
    copy = NULL;
out:
    goro_rwmutex_unlock(&m->lock);
    if (copy)
        free(copy);
    return rc;
}

void goro_http_mux_serve(goro_http_response *w, goro_http_request *r, void *mux)
{
    goro_http_mux *m = mux;
    const char *path = goro_http_request_path(r);
    if (!m || !path) {
        goro_http_error(w, 500, "500 internal server error");
        return;
    }
    size_t pl = strlen(path);
    goro_http_handler h = NULL;
    void *arg = NULL;
    if (goro_rwmutex_rlock(&m->lock) == 0) {
        for (size_t i = 0; i < m->n; i++) {
            const route *rt = &m->routes[i];
            if (rt->subtree ? (pl >= rt->len && memcmp(path, rt->pattern, rt->len) == 0)
                            : (pl == rt->len && memcmp(path, rt->pattern, pl) == 0)) {
                h = rt->handler;
                arg = rt->arg;
                break;
            }
        }
        goro_rwmutex_runlock(&m->lock);
    }
    if (h)
        h(w, r, arg);
    else
        goro_http_error(w, 404, "404 page not found");
}
