/* dnsresolve.c: names of DNS ServiceEntries become one endpoint per address, with the
 * endpoint's other fields kept; without endpoints each host is resolved for itself
 * (dns_host); DNS_ROUND_ROBIN keeps one address; IP endpoints and STATIC entries stay
 * as they are; a refresh that finds the same addresses reports no change; a name that
 * does not resolve stays a name.  Only "localhost" (the hosts file) and a name under
 * .invalid are looked up, so no network is needed. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "config/model.h"
#include "dnsresolve.h"
#include "pool.h"

static struct pool *P;

static struct cfg_se *se_new(enum se_resolution res, const char *host)
{
	struct cfg_se *se = pool_calloc(P, 1, sizeof(*se));
	const char **hosts = pool_calloc(P, 1, sizeof(*hosts));

	hosts[0] = host;
	se->hosts.v = hosts;
	se->hosts.n = 1;
	se->resolution = res;
	return se;
}

static bool has_address(const struct cfg_se *se, const char *addr)
{
	for (size_t i = 0; i < se->nresolved; i++)
		if (strcmp(se->resolved[i].address, addr) == 0)
			return true;
	return false;
}

static void test_resolve(void **state)
{
	struct cfg_set set;
	struct cfg_se *by_ep = se_new(SE_RES_DNS, "api.example.internal");
	struct cfg_se *by_host = se_new(SE_RES_DNS, "localhost");
	struct cfg_se *rr = se_new(SE_RES_DNS_ROUND_ROBIN, "rr.example.internal");
	struct cfg_se *stat = se_new(SE_RES_STATIC, "static.example.internal");
	struct cfg_se *ses[] = {by_ep, by_host, rr, stat};
	struct se_endpoint eps[2], rr_ep;

	(void)state;
	memset(eps, 0, sizeof(eps));
	eps[0].address = "localhost";
	eps[0].weight = 7;
	eps[0].locality = "r1/z1";
	eps[1].address = "10.1.2.3";
	by_ep->endpoints = eps;
	by_ep->nendpoints = 2;
	memset(&rr_ep, 0, sizeof(rr_ep));
	rr_ep.address = "localhost";
	rr->endpoints = &rr_ep;
	rr->nendpoints = 1;
	stat->endpoints = &eps[1];
	stat->nendpoints = 1;
	memset(&set, 0, sizeof(set));
	set.ses = ses;
	set.nses = 4;

	assert_true(dns_has_names(&set));
	dns_resolve(P, &set);
	assert_true(set.dns_resolved);
	/* a name's addresses, each a copy of its endpoint; an IP endpoint as it was */
	assert_true(has_address(by_ep, "127.0.0.1"));
	assert_true(has_address(by_ep, "10.1.2.3"));
	for (size_t i = 0; i < by_ep->nresolved; i++)
		if (strcmp(by_ep->resolved[i].address, "127.0.0.1") == 0) {
			assert_int_equal(by_ep->resolved[i].weight, 7);
			assert_string_equal(by_ep->resolved[i].locality, "r1/z1");
			assert_null(by_ep->resolved[i].dns_host);
		}
	assert_string_equal(by_ep->endpoints[0].address, "localhost"); /* config untouched */
	/* no endpoints: the host itself, for itself */
	assert_true(has_address(by_host, "127.0.0.1"));
	assert_string_equal(by_host->resolved[0].dns_host, "localhost");
	assert_int_equal(by_host->nendpoints, 0);
	/* round robin: one address */
	assert_int_equal(rr->nresolved, 1);
	/* STATIC: nothing to do */
	assert_int_equal(stat->nresolved, 0);
	/* the same addresses again: no change */
	assert_false(dns_refresh(&set));
	dns_cleanup();
}

/* A name that does not resolve (.invalid, RFC 6761) stays a name: link leaves it out. */
static void test_unresolved(void **state)
{
	struct cfg_set set;
	struct cfg_se *se = se_new(SE_RES_DNS, "api.example.internal");
	struct cfg_se *ses[] = {se};
	struct se_endpoint ep;

	(void)state;
	memset(&ep, 0, sizeof(ep));
	ep.address = "meshgate-test.invalid";
	se->endpoints = &ep;
	se->nendpoints = 1;
	memset(&set, 0, sizeof(set));
	set.ses = ses;
	set.nses = 1;
	dns_resolve(P, &set);
	assert_int_equal(se->nresolved, 1);
	assert_string_equal(se->resolved[0].address, "meshgate-test.invalid");
	assert_false(dns_refresh(&set));
	dns_cleanup();
}

/* The bounded lookup fetch.c uses: an answer within the time, an error for no name. */
static void test_getaddrinfo(void **state)
{
	struct addrinfo hints, *res = NULL;
	bool timed_out = true;
	char text[INET6_ADDRSTRLEN] = "";

	(void)state;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	assert_int_equal(dns_getaddrinfo("localhost", "8080", &hints, 5000, &res, &timed_out), 0);
	assert_false(timed_out);
	assert_non_null(res);
	inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, text, sizeof(text));
	assert_string_equal(text, "127.0.0.1");
	assert_int_equal(ntohs(((struct sockaddr_in *)res->ai_addr)->sin_port), 8080);
	freeaddrinfo(res);
	assert_int_not_equal(
	    dns_getaddrinfo("meshgate-test.invalid", NULL, &hints, 5000, &res, &timed_out), 0);
	assert_null(res);
	dns_cleanup();
}

static void test_no_names(void **state)
{
	struct cfg_set set;
	struct cfg_se *wild = se_new(SE_RES_DNS, "*.example.internal");
	struct cfg_se *ses[] = {wild};

	(void)state;
	memset(&set, 0, sizeof(set));
	set.ses = ses;
	set.nses = 1;
	assert_false(dns_has_names(&set)); /* a wildcard host is no name to resolve */
}

static int setup(void **state)
{
	(void)state;
	P = pool_new();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	pool_free(P);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_resolve, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unresolved, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_getaddrinfo, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_names, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
