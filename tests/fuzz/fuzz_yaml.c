#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pool.h"
#include "config/diag.h"
#include "config/node.h"

/* libFuzzer target for the YAML loader and everything that reads the tree: every getter on
 * every scalar, unknown-field checks on every map, diagnostics formatting. */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_walk(struct diag *d, struct node *n)
{
	static const char *const names[] = {"HTTP", "HTTPS", "TLS", NULL};
	char path[256];
	const char *s;
	int64_t i;
	double x;
	bool b;
	uint64_t us;
	int e;
	size_t k;

	node_path(n, path, sizeof(path));
	node_path(n, path, 8); /* truncation */
	(void)node_type_name(n);
	switch (n->type) {
	case NODE_SCALAR:
	case NODE_NULL:
		(void)node_str(d, n, &s);
		(void)node_int(d, n, -1000, 65535, &i);
		(void)node_int(d, n, INT64_MIN, INT64_MAX, &i);
		(void)node_double(d, n, 0, 100, &x);
		(void)node_bool(d, n, &b);
		(void)node_duration(d, n, 3600000000ull, &us);
		(void)node_duration(d, n, UINT64_MAX, &us);
		(void)node_enum(d, n, names, &e);
		(void)node_want_map(d, n);
		break;
	case NODE_MAP:
		(void)node_want_seq(d, n);
		/* Ask for a couple of keys so some are used and some are not. */
		(void)node_get(n, "spec");
		if (n->n > 0)
			(void)node_get(n, n->keys[n->n - 1]->str);
		for (k = 0; k < n->n; k++)
			fuzz_walk(d, n->vals[k]);
		node_check_unknown(d, n);
		break;
	case NODE_SEQ:
		(void)node_want_map(d, n);
		for (k = 0; k < n->n; k++)
			fuzz_walk(d, n->vals[k]);
		break;
	case NODE_GHOST: /* made only by node_ghost(), never by the parser */
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static FILE *devnull;
	struct pool *p = pool_new();
	struct node_doc **docs;
	struct diag d;
	size_t ndocs, j;

	if (devnull == NULL)
		devnull = fopen("/dev/null", "w");
	diag_init(&d);
	(void)node_load_buffer(p, &d, "fuzz.yaml", (const char *)data, size, &docs, &ndocs);
	for (j = 0; j < ndocs; j++) {
		/* Exercise every resource-context form of the diagnostics. */
		if (j % 3 == 1) {
			docs[j]->kind = "VirtualService";
			docs[j]->name = "vs";
		} else if (j % 3 == 2) {
			docs[j]->kind = "Gateway";
			docs[j]->ns = "ns";
			docs[j]->name = "gw";
		}
		fuzz_walk(&d, docs[j]->root);
		node_mark_used(docs[j]->root);
		node_check_unknown(&d, docs[j]->root);
		diag_warn(&d, docs[j]->root, "doc %zu", j);
	}
	if (devnull != NULL)
		diag_print(&d, devnull);
	diag_fini(&d);
	pool_free(p);
	return 0;
}
