#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>

#include "metrics.h"
#include "tls.h"
#include "worker.h"

_Static_assert(TLS_FAIL__COUNT <= METRICS_TLS_FAIL_KINDS, "metrics_shard.tls_fail too small");

static const char *const metric_names[] = {
#define MG_METRIC_NAME(name, type, help) #name,
    MG_METRICS(MG_METRIC_NAME)
#undef MG_METRIC_NAME
};

static const char *const metric_types[] = {
#define MG_METRIC_TYPE(name, type, help) #type,
    MG_METRICS(MG_METRIC_TYPE)
#undef MG_METRIC_TYPE
};

static const char *const metric_help[] = {
#define MG_METRIC_HELP(name, type, help) help,
    MG_METRICS(MG_METRIC_HELP)
#undef MG_METRIC_HELP
};

void metrics_write_prometheus(FILE *out)
{
	int m, w;

	for (m = 0; m < M__COUNT; m++) {
		uint64_t sum = 0;

		/* Each shard is written only by its worker; a read that races an increment
		 * sees the old or the new value, both fine for a scrape. */
		for (w = 0; w < nworkers; w++)
			sum += __atomic_load_n(&workers[w]->metrics.v[m], __ATOMIC_RELAXED);
		fprintf(out, "# HELP meshgate_%s %s\n# TYPE meshgate_%s %s\nmeshgate_%s %llu\n",
			metric_names[m], metric_help[m], metric_names[m], metric_types[m],
			metric_names[m], (unsigned long long)sum);
	}
	fputs("# HELP meshgate_downstream_cx_ssl_handshake_error_by_reason Failed TLS handshakes "
	      "by reason\n# TYPE meshgate_downstream_cx_ssl_handshake_error_by_reason counter\n",
	      out);
	for (m = 0; m < TLS_FAIL__COUNT; m++) {
		uint64_t sum = 0;

		for (w = 0; w < nworkers; w++)
			sum += __atomic_load_n(&workers[w]->metrics.tls_fail[m], __ATOMIC_RELAXED);
		fprintf(
		    out,
		    "meshgate_downstream_cx_ssl_handshake_error_by_reason{reason=\"%s\"} %llu\n",
		    tls_fail_name((enum tls_fail)m), (unsigned long long)sum);
	}
	fputs("# HELP meshgate_downstream_cx_permissive Connections on PeerAuthentication "
	      "PERMISSIVE ports by transport\n# TYPE meshgate_downstream_cx_permissive counter\n",
	      out);
	for (m = 0; m < 2; m++) {
		uint64_t sum = 0;

		for (w = 0; w < nworkers; w++)
			sum +=
			    __atomic_load_n(&workers[w]->metrics.permissive[m], __ATOMIC_RELAXED);
		fprintf(out, "meshgate_downstream_cx_permissive{transport=\"%s\"} %llu\n",
			m == METRICS_PERMISSIVE_TLS ? "tls" : "plaintext", (unsigned long long)sum);
	}
}
