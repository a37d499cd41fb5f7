/* Decoder of the main config's `healthChecks` list (meshgate's active health checking). */
#ifndef MG_HC_CONF_H
#define MG_HC_CONF_H

struct pool;
struct diag;
struct node;
struct cfg_main;

/* n may be NULL (no health checks).  Errors are reported at the offending node. */
void hc_conf_decode(struct pool *p, struct diag *d, struct node *n, struct cfg_main *m);

#endif
