/* The admin endpoint (loopback by default): /ready, /metrics (Prometheus), /clusters,
 * /listeners, /config_dump.  Runs on the control thread's event base; never on the data
 * path. */
#ifndef MG_ADMIN_H
#define MG_ADMIN_H

struct event_base;

int admin_start(struct event_base *base, const char *address); /* "" or NULL: disabled */
void admin_stop(void);
void admin_free(void);

#endif
