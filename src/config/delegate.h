/* VirtualService delegation (Istio's root and delegate VirtualServices): a root route with
 * `delegate: {name, namespace}` is replaced by the delegate's routes, each with its match
 * blocks merged into the root route's (Istio's mergeHTTPMatchRequests: a delegate block
 * must fit inside a root block - same or narrower uri/scheme/method/authority, headers and
 * query parameters that do not contradict - or it is dropped with a warning).  One level
 * only: a delegate that delegates again, a delegate that is missing or that has hosts of
 * its own are load-time errors.  Runs on the control thread after the VirtualServices were
 * validated (regexes compiled) and before they are bound to listeners. */
#ifndef MG_DELEGATE_H
#define MG_DELEGATE_H

#include <stddef.h>

struct pool;
struct diag;
struct cfg_vs;

void delegate_expand(struct pool *p, struct diag *d, struct cfg_vs **vss, size_t n);

#endif
