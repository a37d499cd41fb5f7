/* Decoders for the DestinationRule trafficPolicy parts that meshgate enforces itself:
 * connectionPool (circuit breaking), outlierDetection and loadBalancer.consistentHash.  Istio's
 * field names, ranges and defaults; errors are reported at the offending node. */
#ifndef MG_DR_POLICY_H
#define MG_DR_POLICY_H

#include <stdbool.h>

#include "model.h"

struct diag;
struct node;
struct pool;

/* n may be NULL (absent: cp zeroed, not given). */
bool dr_policy_connection_pool(struct diag *d, struct node *n, struct conn_pool_settings *cp);
bool dr_policy_outlier(struct diag *d, struct node *n, struct outlier_settings *od);
bool dr_policy_consistent_hash(struct pool *p, struct diag *d, struct node *n,
			       struct consistent_hash *ch);
bool dr_policy_locality(struct pool *p, struct diag *d, struct node *n, struct locality_lb *ll);

#endif
