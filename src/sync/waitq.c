/*
 * waitq.c - park/pop helpers of the sync primitives' wait queue (syncq.h).
 */
#define GORO__LOCK_RANK GORO__RANK_SYNC /* lock.h */
#include "sync/syncq.h"

int32_t goro__syncq_park(goro__syncq *sq, goro__g *g, goro__waiter *me, unsigned reason,
                         const void *obj, int64_t deadline, bool front)
{
    int64_t t = me->t;
    uint32_t arg = me->arg;
    memset(me, 0, sizeof *me);
    me->t = t;
    me->arg = arg;
    me->g = g;
    me->seq = goro__park_seq(g);
    me->lock = &sq->lock;
    me->obj = obj;
    me->solo = deadline == GORO_NO_DEADLINE;
    if (front)
        goro__waitq_push_front(&sq->q, me);
    else
        goro__waitq_push(&sq->q, me);
    sq->n++;
    g->waiting = me;
    g->nwaiting = 1;
    int32_t wake = goro__park(reason, obj, goro__commit_unlock, &sq->lock, deadline);
    g->waiting = NULL;
    g->nwaiting = 0;
    if (wake == GORO__WAKE_TIMEOUT) {
        goro__spin_lock(&sq->lock);
        if (me->q) {
            goro__waitq_remove(&sq->q, me);
            sq->n--;
        }
        goro__spin_unlock(&sq->lock);
    }
    return wake;
}

goro__waiter *goro__syncq_pop(goro__syncq *sq, int32_t wake)
{
    for (;;) {
        goro__waiter *w = sq->q.head;
        if (!w)
            return NULL;
        goro__waitq_remove(&sq->q, w);
        sq->n--;
        if (goro__claim_waiter(w, wake))
            return w;
    }
}

goro__waiter *goro__syncq_pop_all(goro__syncq *sq, int32_t wake)
{
    goro__waiter *head = NULL, **tail = &head, *w;
    while ((w = goro__syncq_pop(sq, wake))) {
        w->next = NULL;
        *tail = w;
        tail = &w->next;
    }
    return head;
}

void goro__syncq_ready_list(goro__waiter *list)
{
    while (list) {
        goro__waiter *w = list;
        list = w->next;
        goro__ready(w->g, false);
    }
}
