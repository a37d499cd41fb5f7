/* geoip.c: databases open (or are refused with the reason), and geoip_apply drops the
 * client's own fields of the configured names, then appends the values the lookup finds:
 * country, city, region from the main database, the AS number from it or from the ASN
 * database; IPv4-mapped IPv6 clients are looked up as IPv4; an unknown address gets
 * nothing.  The test database is written by tests/upstream/mg-mmdb-write.py. */
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
#include <strings.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "config/diag.h"
#include "exchange.h"
#include "geoip.h"
#include "pool.h"
#include "fixture.h"

static char dir[256], db[300], asn_db[300];

static int write_db(const char *path, const char *nets)
{
	const char *top = getenv("abs_top_srcdir");
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "python3 '%s/tests/upstream/mg-mmdb-write.py' '%s' %s",
		 top != NULL ? top : ".", path, nets);
	return system(cmd);
}

static struct sockaddr_storage addr(const char *text)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':') != NULL) {
		((struct sockaddr_in6 *)&ss)->sin6_family = AF_INET6;
		assert_int_equal(
		    inet_pton(AF_INET6, text, &((struct sockaddr_in6 *)&ss)->sin6_addr), 1);
	} else {
		((struct sockaddr_in *)&ss)->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, text, &((struct sockaddr_in *)&ss)->sin_addr),
				 1);
	}
	return ss;
}

/* The value of field name among h[0..n), or NULL; fails on a second one. */
static const char *field(const struct http1_header *h, size_t n, const char *name)
{
	static char buf[300];
	const char *found = NULL;

	for (size_t i = 0; i < n; i++)
		if (h[i].name_len == strlen(name) &&
		    strncasecmp(h[i].name, name, h[i].name_len) == 0) {
			assert_null(found);
			snprintf(buf, sizeof(buf), "%.*s", (int)h[i].value_len, h[i].value);
			found = buf;
		}
	return found;
}

struct run {
	struct http1_header h[3 + GEOIP_HEADERS_MAX];
	size_t n;
	struct exchange *ex;
};

/* geoip_apply for client ip on a request with Host, a spoofed x-geo-country, Accept. */
static void apply(const struct geoip *g, const struct cfg_geoip *conf, const char *ip,
		  struct run *r)
{
	struct sockaddr_storage ss = addr(ip);
	const struct http1_header in[] = {
	    {"Host", 4, "a", 1}, {"X-Geo-Country", 13, "ZZ", 2}, {"Accept", 6, "*/*", 3}};

	memcpy(r->h, in, sizeof(in));
	r->n = 3;
	memset(r->ex, 0, offsetof(struct exchange, arena));
	geoip_apply(g, conf, (const struct sockaddr *)&ss, r->ex, r->h, &r->n);
}

static void test_lookups(void **state)
{
	struct pool *p = pool_new();
	struct diag d;
	struct cfg_geoip conf = {.database = db,
				 .country = "x-geo-country",
				 .city = "x-geo-city",
				 .region = "x-geo-region",
				 .asn = "x-geo-asn"};
	struct run r = {.ex = calloc(1, sizeof(struct exchange))};
	struct geoip *g;

	(void)state;
	diag_init(&d);
	assert_non_null(r.ex);
	g = geoip_open(p, &d, &conf);
	assert_non_null(g);
	assert_int_equal(d.nerrors, 0);

	apply(g, &conf, "203.0.113.5", &r);
	assert_int_equal(r.n, 6);
	assert_string_equal(field(r.h, r.n, "host"), "a");
	assert_string_equal(field(r.h, r.n, "accept"), "*/*");
	assert_string_equal(field(r.h, r.n, "x-geo-country"), "DE"); /* ZZ was dropped */
	assert_string_equal(field(r.h, r.n, "x-geo-city"), "Berlin");
	assert_string_equal(field(r.h, r.n, "x-geo-region"), "BE");
	assert_string_equal(field(r.h, r.n, "x-geo-asn"), "64500");

	apply(g, &conf, "::ffff:203.0.113.200", &r); /* an IPv4 client of a dual-stack socket */
	assert_string_equal(field(r.h, r.n, "x-geo-country"), "FR");
	assert_string_equal(field(r.h, r.n, "x-geo-city"), "Paris");
	assert_null(field(r.h, r.n, "x-geo-asn")); /* the record has none */

	apply(g, &conf, "2001:db8::7", &r);
	assert_string_equal(field(r.h, r.n, "x-geo-country"), "JP");
	assert_int_equal(r.n, 3);

	apply(g, &conf, "192.0.2.1",
	      &r); /* not in the database: the spoofed field goes all the same */
	assert_int_equal(r.n, 2);
	assert_null(field(r.h, r.n, "x-geo-country"));

	/* the AS number from its own database when there is one */
	conf.asn_database = asn_db;
	assert_non_null(g = geoip_open(p, &d, &conf));
	apply(g, &conf, "203.0.113.5", &r);
	assert_string_equal(field(r.h, r.n, "x-geo-asn"), "65999");
	assert_string_equal(field(r.h, r.n, "x-geo-country"), "DE");

	free(r.ex);
	diag_fini(&d);
	pool_free(p); /* closes the databases */
}

static void test_open_errors(void **state)
{
	struct pool *p = pool_new();
	struct diag d;
	char bad[300];
	struct cfg_geoip conf = {.country = "x-geo-country"};
	FILE *f;

	(void)state;
	diag_init(&d);
	assert_null(geoip_open(p, &d, &conf)); /* no database: no geoip */
	assert_int_equal(d.nerrors, 0);
	snprintf(bad, sizeof(bad), "%s/missing.mmdb", dir);
	conf.database = bad;
	assert_null(geoip_open(p, &d, &conf));
	assert_int_equal(d.nerrors, 1);
	snprintf(bad, sizeof(bad), "%s/bad.mmdb", dir);
	assert_non_null(f = fopen(bad, "w"));
	fputs("not a database", f);
	fclose(f);
	assert_null(geoip_open(p, &d, &conf));
	assert_int_equal(d.nerrors, 2);
	unlink(bad);
	diag_fini(&d);
	pool_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lookups),
	    cmocka_unit_test(test_open_errors),
	};
	int rc;

	if (!fixture_scratch_dir(dir, sizeof(dir), "test_geoip"))
		return 1;
	snprintf(db, sizeof(db), "%s/geo.mmdb", dir);
	snprintf(asn_db, sizeof(asn_db), "%s/asn.mmdb", dir);
	if (write_db(db, "203.0.113.0/24=DE:Berlin:BE:64500 203.0.113.128/25=FR:Paris:IDF "
			 "2001:db8::/32=JP") != 0 ||
	    write_db(asn_db, "203.0.113.0/24=XX:::65999") != 0) {
		fprintf(stderr, "cannot write the test databases (python3?)\n");
		return 1;
	}
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(db);
	unlink(asn_db);
	fixture_scratch_dir_remove(dir);
	return rc;
}
