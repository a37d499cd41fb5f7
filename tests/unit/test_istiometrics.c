/* istiometrics.c: series keyed by cluster, code, flags, gRPC status and protocol, summed
 * over workers into one line each; the table growing past its first size; the bound on
 * series per worker (the rest counted as "overflow"); the histograms' buckets (Istio's
 * bounds, cumulative); destination labels from a cluster's name. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clusterstate.h"
#include "istiometrics.h"
#include "worker.h"

static struct cluster_state *state_named(const char *name)
{
	struct cluster_state *cs = calloc(1, sizeof(*cs) + strlen(name) + 1);

	assert_non_null(cs);
	strcpy(cs->name, name);
	return cs;
}

static int setup(void **state)
{
	(void)state;
	for (int i = 0; i < 2; i++) {
		workers[i] = calloc(1, sizeof(struct worker));
		assert_non_null(workers[i]);
		workers[i]->istio = istiom_table_new();
	}
	nworkers = 2;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < 2; i++) {
		istiom_table_free(workers[i]->istio);
		free(workers[i]);
		workers[i] = NULL;
	}
	nworkers = 0;
	return 0;
}

static char *scrape(void)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	istiom_write_prometheus(f, NULL);
	fclose(f);
	return text;
}

/* How many lines start with prefix and end with " value" (value NULL: any). */
static int lines(const char *text, const char *prefix, const char *needle, const char *value)
{
	int n = 0;

	for (const char *l = text; *l != '\0';) {
		const char *eol = strchr(l, '\n');
		size_t len = eol != NULL ? (size_t)(eol - l) : strlen(l);
		char line[4096];

		snprintf(line, sizeof(line), "%.*s", (int)len, l);
		if (strncmp(line, prefix, strlen(prefix)) == 0 &&
		    (needle == NULL || strstr(line, needle) != NULL)) {
			const char *sp = strrchr(line, ' ');

			if (value == NULL || (sp != NULL && strcmp(sp + 1, value) == 0))
				n++;
		}
		l += len + (eol != NULL);
	}
	return n;
}

static void test_summed_over_workers(void **state)
{
	struct cluster_state *a = state_named("outbound|80|v1|reviews.bookinfo.svc.cluster.local");
	struct cluster_state *b = state_named("outbound|443||httpbin.org");
	char *text;

	(void)state;
	for (int i = 0; i < 3; i++) {
		istiom_request(workers[0]->istio, a, 200, "-", -1, ISTIOM_HTTP, 700, 0, 50);
		istiom_request(workers[1]->istio, a, 200, "-", -1, ISTIOM_HTTP, 30000, 2000, 50);
	}
	istiom_request(workers[1]->istio, a, 503, "UF,URX", -1, ISTIOM_HTTP, 1000, 0, 0);
	istiom_request(workers[0]->istio, b, 200, "-", 0, ISTIOM_GRPC, 1000, 5, 5);
	istiom_request(workers[0]->istio, NULL, 404, "NR", -1, ISTIOM_HTTP, 100, 0, 0);
	text = scrape();
	/* one line per key, the workers' counts summed */
	assert_int_equal(lines(text, "istio_requests_total{", "response_code=\"200\"", NULL), 2);
	assert_int_equal(lines(text, "istio_requests_total{",
			       "destination_service=\"reviews.bookinfo.svc.cluster.local\"", "6"),
			 1);
	assert_int_equal(lines(text, "istio_requests_total{", "response_flags=\"UF,URX\"", "1"), 1);
	/* the destination from the cluster's name: a Kubernetes name, another host */
	assert_int_equal(lines(text, "istio_requests_total{",
			       "destination_service_name=\"reviews\",destination_service_namespace="
			       "\"bookinfo\"",
			       NULL),
			 2);
	assert_int_equal(lines(text, "istio_requests_total{",
			       "destination_service=\"httpbin.org\",destination_canonical_service="
			       "\"httpbin.org\"",
			       "1"),
			 1);
	assert_int_equal(lines(text, "istio_requests_total{",
			       "request_protocol=\"grpc\",response_code=\"200\",grpc_response_"
			       "status=\"0\"",
			       "1"),
			 1);
	assert_int_equal(
	    lines(text, "istio_requests_total{", "destination_service=\"unknown\"", "1"), 1);
	/* durations: 0.7 ms is in le="1" (not le="0.5"), 30 ms in le="50" */
	assert_int_equal(
	    lines(text, "istio_request_duration_milliseconds_bucket{",
		  "response_code=\"200\",grpc_response_status=\"\",response_flags=\"-\","
		  "connection_security_policy=\"unknown\",le=\"0.5\"}",
		  "0"),
	    1);
	assert_int_equal(lines(text, "istio_request_duration_milliseconds_bucket{",
			       "destination_service=\"reviews.bookinfo.svc.cluster.local\"", NULL),
			 40);
	assert_int_equal(
	    lines(text, "istio_request_duration_milliseconds_bucket{",
		  "response_code=\"200\",grpc_response_status=\"\",response_flags=\"-\","
		  "connection_security_policy=\"unknown\",le=\"1\"}",
		  "3"),
	    1);
	assert_int_equal(
	    lines(text, "istio_request_duration_milliseconds_bucket{",
		  "response_code=\"200\",grpc_response_status=\"\",response_flags=\"-\","
		  "connection_security_policy=\"unknown\",le=\"25\"}",
		  "3"),
	    1);
	assert_int_equal(
	    lines(text, "istio_request_duration_milliseconds_bucket{",
		  "response_code=\"200\",grpc_response_status=\"\",response_flags=\"-\","
		  "connection_security_policy=\"unknown\",le=\"50\"}",
		  "6"),
	    1);
	assert_int_equal(lines(text, "istio_request_duration_milliseconds_sum{",
			       "destination_service=\"reviews.bookinfo.svc.cluster.local\"",
			       "92.100"),
			 1);
	/* sizes: 2000 bytes are > 1000 and <= 10000 */
	assert_int_equal(
	    lines(text, "istio_request_bytes_bucket{",
		  "response_code=\"200\",grpc_response_status=\"\",response_flags=\"-\","
		  "connection_security_policy=\"unknown\",le=\"1e+03\"}",
		  "3"),
	    1);
	assert_int_equal(
	    lines(text, "istio_request_bytes_bucket{",
		  "response_code=\"200\",grpc_response_status=\"\",response_flags=\"-\","
		  "connection_security_policy=\"unknown\",le=\"1e+04\"}",
		  "6"),
	    1);
	assert_int_equal(lines(text, "istio_response_bytes_sum{",
			       "destination_service=\"reviews.bookinfo.svc.cluster.local\"", "300"),
			 1);
	free(text);
	free(a);
	free(b);
}

static void test_tcp(void **state)
{
	struct cluster_state *db = state_named("outbound|5432||db.example.com");
	char *text;

	(void)state;
	istiom_tcp_opened(workers[0]->istio, db);
	istiom_tcp_opened(workers[1]->istio, db);
	istiom_tcp_bytes(workers[0]->istio, db, 60, 1500); /* a report while open */
	istiom_tcp_closed(workers[0]->istio, db, "-", 40, 500);
	istiom_tcp_closed(workers[1]->istio, db, "UF,URX", 0, 0);
	text = scrape();
	assert_int_equal(lines(text, "istio_tcp_connections_opened_total{",
			       "request_protocol=\"tcp\",response_flags=\"-\"", "2"),
			 1);
	assert_int_equal(
	    lines(text, "istio_tcp_connections_closed_total{", "response_flags=\"-\"", "1"), 1);
	assert_int_equal(
	    lines(text, "istio_tcp_connections_closed_total{", "response_flags=\"UF,URX\"", "1"),
	    1);
	assert_int_equal(lines(text, "istio_tcp_sent_bytes_total{", "response_flags=\"-\"", "2000"),
			 1);
	assert_int_equal(
	    lines(text, "istio_tcp_received_bytes_total{", "response_flags=\"-\"", "100"), 1);
	/* no HTTP samples for a relay */
	assert_int_equal(lines(text, "istio_requests_total{", NULL, NULL), 0);
	free(text);
	free(db);
}

static void test_many_series(void **state)
{
	struct cluster_state *a = state_named("outbound|80||a.default.svc.cluster.local");
	char *text;

	(void)state;
	/* codes 100..599 x flags: past the first table size, then past the bound */
	for (int code = 100; code < 600; code++)
		for (int g = -1; g < 9; g++)
			istiom_request(workers[0]->istio, a, code, "-", g, ISTIOM_HTTP, 1, 0, 0);
	text = scrape();
	assert_int_equal(lines(text, "istio_requests_total{", NULL, "1"), ISTIOM_MAX_SERIES);
	assert_int_equal(lines(text, "istio_requests_total{", "response_flags=\"overflow\"", NULL),
			 1);
	assert_int_equal(lines(text, "istio_requests_total{", "response_flags=\"overflow\"", "904"),
			 1);
	/* a series made before the bound still counts */
	istiom_request(workers[0]->istio, a, 100, "-", -1, ISTIOM_HTTP, 1, 0, 0);
	free(text);
	text = scrape();
	assert_int_equal(lines(text, "istio_requests_total{",
			       "response_code=\"100\",grpc_response_status=\"\"", "2"),
			 1);
	free(text);
	free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_summed_over_workers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tcp, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_series, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
