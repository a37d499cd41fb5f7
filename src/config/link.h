/* Cross-resource checks and compilation of a loaded cfg_set into a snapshot: Gateway
 * selection by labels, VirtualService -> Gateway binding, host conflicts, destination ->
 * ServiceEntry -> cluster, subset -> DestinationRule, listener and virtual-host tables.
 * Every problem is reported with its position; nothing is published here. */
#ifndef MG_LINK_H
#define MG_LINK_H

struct pool;
struct diag;
struct cfg_set;
struct snapshot;

/* Returns a snapshot (refs = 0, not yet published) owning p, or NULL when d got errors
 * (then the caller frees p). */
struct snapshot *link_compile(struct pool *p, struct diag *d, struct cfg_set *set);

#endif
