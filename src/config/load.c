#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pool.h"
#include "diag.h"
#include "node.h"
#include "load.h"

#define LOAD_DUP_MIN 1024 /* buckets of the duplicate-name table at first (power of two) */

typedef void (*load_decode_fn)(struct pool *, struct diag *, struct cfg_set *,
			       const struct cfg_meta *, struct node *);

/* Every Istio kind meshgate knows of.  decode == NULL: known, not implemented yet. */
struct load_kind {
	const char *group;
	const char *kind;
	load_decode_fn decode;
	const char *const *versions; /* NULL: load_net_versions */
};

static const char *const load_telemetry_versions[] = {"v1", "v1alpha1", NULL};

/* A Sidecar configures the sidecar proxies of its workloads; Istio's gateways are not
 * affected by it, and neither is meshgate: loaded, not applied, said so. */
static void load_sidecar(struct pool *p, struct diag *d, struct cfg_set *set,
			 const struct cfg_meta *meta, struct node *spec)
{
	(void)p;
	(void)set;
	node_mark_used(spec);
	diag_notice(d, meta->node,
		    "Sidecar configures sidecar proxies only: a gateway is not affected by it");
}

static const struct load_kind load_kinds[] = {
    {"networking.istio.io", "Gateway", cfg_gateway_decode, NULL},
    {"networking.istio.io", "VirtualService", cfg_vs_decode, NULL},
    {"networking.istio.io", "DestinationRule", cfg_dr_decode, NULL},
    {"networking.istio.io", "ServiceEntry", cfg_se_decode, NULL},
    {"networking.istio.io", "Sidecar", load_sidecar, NULL},
    {"networking.istio.io", "EnvoyFilter", cfg_ef_decode, NULL},
    {"networking.istio.io", "WorkloadEntry", NULL, NULL},
    {"networking.istio.io", "WorkloadGroup", NULL, NULL},
    {"networking.istio.io", "ProxyConfig", NULL, NULL},
    {"security.istio.io", "PeerAuthentication", cfg_pa_decode, NULL},
    {"security.istio.io", "AuthorizationPolicy", cfg_ap_decode, NULL},
    {"security.istio.io", "RequestAuthentication", cfg_ra_decode, NULL},
    {"telemetry.istio.io", "Telemetry", cfg_telemetry_decode, load_telemetry_versions},
    {"extensions.istio.io", "WasmPlugin", NULL, NULL},
};

/* The versions the implemented (networking) kinds are served in. */
static const char *const load_net_versions[] = {"v1", "v1beta1", "v1alpha3", NULL};

/* Kubernetes ObjectMeta fields a `kubectl get -o yaml` dump carries: tolerated, ignored
 * (annotations but one: load_annotations). */
static const char *const load_meta_ignored[] = {
    "creationTimestamp",
    "resourceVersion",
    "generation",
    "uid",
    "managedFields",
    "selfLink",
    "finalizers",
    "ownerReferences",
    "generateName",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    NULL,
};

struct load_seen {
	struct load_seen *next;
	const char *kind, *ns, *name;
	const char *file; /* where it was first defined (its tree may be gone by now) */
	int line;
	uint32_t hash;
};

struct load_ctx {
	struct pool *p;
	struct diag *d;
	struct cfg_set *set;
	/* (kind, ns, name) already loaded: chained hash, doubled when the chains average two
	 * entries, so the duplicate check stays O(1) per resource at any config size. */
	struct load_seen **seen;
	size_t nbuckets, nseen;
};

static uint32_t load_hash(const char *kind, const char *ns, const char *name)
{
	const char *parts[3] = {kind, ns, name};
	uint32_t h = 2166136261u;
	int i;

	for (i = 0; i < 3; i++) {
		const unsigned char *s = (const unsigned char *)parts[i];

		for (; *s != '\0'; s++)
			h = (h ^ *s) * 16777619u;
		h = (h ^ 0xff) * 16777619u;
	}
	return h;
}

static void load_dup_grow(struct load_ctx *c)
{
	size_t n = c->nbuckets ? c->nbuckets * 2 : LOAD_DUP_MIN, i;
	struct load_seen **v = calloc(n, sizeof(*v)), *s, *next;

	if (v == NULL)
		abort(); /* control thread: allocation failure is fatal, as in pool.c */
	for (i = 0; i < c->nbuckets; i++) {
		for (s = c->seen[i]; s != NULL; s = next) {
			next = s->next;
			s->next = v[s->hash & (n - 1)];
			v[s->hash & (n - 1)] = s;
		}
	}
	free(c->seen);
	c->seen = v;
	c->nbuckets = n;
}

/* Records (kind, ns, name); reports a duplicate at `at` and returns false. */
static bool load_check_dup(struct load_ctx *c, const char *kind, const char *ns, const char *name,
			   const struct node *at)
{
	uint32_t h = load_hash(kind, ns, name);
	struct load_seen *s;

	if (c->nseen >= 2 * c->nbuckets)
		load_dup_grow(c);
	for (s = c->seen[h & (c->nbuckets - 1)]; s != NULL; s = s->next) {
		if (s->hash == h && strcmp(s->kind, kind) == 0 && strcmp(s->ns, ns) == 0 &&
		    strcmp(s->name, name) == 0) {
			/* Kind and ns/name are in the message prefix already. */
			diag_error(c->d, at, "duplicate resource, first defined at %s:%d", s->file,
				   s->line);
			return false;
		}
	}
	s = pool_alloc(c->p, sizeof(*s));
	s->kind = kind;
	s->ns = ns;
	s->name = name;
	s->file = at->doc->file;
	s->line = at->line;
	s->hash = h;
	s->next = c->seen[h & (c->nbuckets - 1)];
	c->seen[h & (c->nbuckets - 1)] = s;
	c->nseen++;
	return true;
}

static bool load_is_istio_group(const char *group)
{
	size_t len = strlen(group);

	return strcmp(group, "istio.io") == 0 ||
	       (len > 9 && strcmp(group + len - 9, ".istio.io") == 0);
}

/* metadata.annotations: ignored, but for istio.io/dry-run, which Istio's validation allows
 * on an AuthorizationPolicy only; its decoder checks the value, knowing the action. */
static bool load_annotations(struct load_ctx *c, struct node *md, struct cfg_meta *meta)
{
	struct node *an = node_get(md, "annotations"), *n;

	if (an == NULL || an->type == NODE_NULL)
		return true;
	if (!node_want_map(c->d, an)) {
		node_mark_used(an);
		return false;
	}
	n = node_get(an, CFG_DRY_RUN_ANNOTATION);
	node_mark_used(an);
	if (n == NULL)
		return true;
	if (strcmp(meta->kind, "AuthorizationPolicy") != 0) {
		diag_error(c->d, n,
			   "only an AuthorizationPolicy can be a dry run (Istio refuses the "
			   "annotation on a %s): remove it",
			   meta->kind);
		return false;
	}
	return node_str(c->d, n, &meta->dry_run);
}

/* metadata: name (required), namespace, labels, one annotation; the rest of ObjectMeta is
 * ignored. */
static bool load_metadata(struct load_ctx *c, struct node *root, struct cfg_meta *meta)
{
	struct node *md, *n;
	const char *s;
	bool ok = true;
	size_t i;

	md = cfg_require(c->d, root, "metadata");
	if (md == NULL || !node_want_map(c->d, md))
		return false;
	if ((n = node_get(md, "namespace")) != NULL && node_str(c->d, n, &s)) {
		if (cfg_is_dns_label(s)) {
			meta->ns = s;
			root->doc->ns = s;
		} else {
			diag_error(c->d, n, "invalid namespace \"%s\": must be a DNS label", s);
			ok = false;
		}
	}
	if ((n = cfg_require(c->d, md, "name")) == NULL) {
		ok = false;
	} else if (node_str(c->d, n, &s)) {
		root->doc->name = s;
		if (cfg_is_dns_subdomain(s)) {
			meta->name = s;
		} else {
			diag_error(c->d, n, "invalid name \"%s\": must be a lower-case DNS name",
				   s);
			ok = false;
		}
	} else {
		ok = false;
	}
	if (!cfg_decode_labels(c->p, c->d, node_get(md, "labels"), &meta->labels))
		ok = false;
	if (!load_annotations(c, md, meta))
		ok = false;
	for (i = 0; load_meta_ignored[i] != NULL; i++)
		node_mark_used(node_get(md, load_meta_ignored[i]));
	node_check_unknown(c->d, md);
	return ok && meta->name != NULL;
}

static const struct load_kind *load_find_kind(const char *group, const char *kind)
{
	size_t i;

	for (i = 0; i < sizeof(load_kinds) / sizeof(load_kinds[0]); i++)
		if (strcmp(load_kinds[i].group, group) == 0 &&
		    strcmp(load_kinds[i].kind, kind) == 0)
			return &load_kinds[i];
	return NULL;
}

static bool load_kind_name_known(const char *kind)
{
	size_t i;

	for (i = 0; i < sizeof(load_kinds) / sizeof(load_kinds[0]); i++)
		if (strcmp(load_kinds[i].kind, kind) == 0)
			return true;
	return false;
}

static bool load_version_ok(const struct load_kind *k, const char *version)
{
	const char *const *v = k->versions != NULL ? k->versions : load_net_versions;

	for (size_t i = 0; v[i] != NULL; i++)
		if (strcmp(v[i], version) == 0)
			return true;
	return false;
}

static void load_document(struct load_ctx *c, struct node *root);

/* A `kind: List` (what `kubectl get -o yaml` prints): each item becomes its own document so
 * that its messages name the item's kind and name, not the List's. */
static void load_retarget(struct node *n, struct node_doc *doc)
{
	size_t i;

	n->doc = doc;
	for (i = 0; i < n->n; i++) {
		if (n->keys != NULL && n->keys[i] != NULL)
			load_retarget(n->keys[i], doc);
		if (n->vals[i] != NULL)
			load_retarget(n->vals[i], doc);
	}
}

static void load_list(struct load_ctx *c, struct node *root)
{
	struct node *items;
	size_t i;

	items = node_get(root, "items");
	node_mark_used(node_get(root, "metadata"));
	node_check_unknown(c->d, root);
	if (items == NULL || items->type == NODE_NULL || !node_want_seq(c->d, items))
		return;
	for (i = 0; i < items->n; i++) {
		struct node_doc *doc = pool_alloc(c->p, sizeof(*doc));

		*doc = *root->doc;
		doc->kind = doc->ns = doc->name = NULL;
		doc->root = items->vals[i];
		load_retarget(items->vals[i], doc);
		load_document(c, items->vals[i]);
	}
}

static void load_document(struct load_ctx *c, struct node *root)
{
	struct node *av, *kn, *spec;
	const struct load_kind *k;
	struct cfg_meta meta;
	const char *api, *kind, *slash, *group, *version;

	if (!node_want_map(c->d, root))
		return;
	av = cfg_require(c->d, root, "apiVersion");
	kn = cfg_require(c->d, root, "kind");
	api = kind = NULL;
	if (av != NULL)
		node_str(c->d, av, &api);
	if (kn != NULL)
		node_str(c->d, kn, &kind);
	if (api == NULL || kind == NULL) {
		node_mark_used(root);
		return;
	}
	if (strcmp(kind, "List") == 0 && strcmp(api, "v1") == 0) {
		load_list(c, root);
		return;
	}
	slash = strchr(api, '/');
	if (slash == NULL && load_is_istio_group(api)) {
		diag_error(c->d, av, "apiVersion must be GROUP/VERSION, e.g. %s/v1", api);
		node_mark_used(root);
		return;
	}
	group = slash ? pool_strndup(c->p, api, (size_t)(slash - api)) : "";
	version = slash ? slash + 1 : api;
	if (!load_is_istio_group(group)) {
		/* Name the apiVersion when the kind could pass for Istio's (Gateway API). */
		if (load_kind_name_known(kind))
			diag_notice(c->d, root, "skipping non-Istio kind %s (%s)", kind, api);
		else
			diag_notice(c->d, root, "skipping non-Istio kind %s", kind);
		node_mark_used(root);
		return;
	}

	memset(&meta, 0, sizeof(meta));
	meta.kind = kind;
	meta.api_version = api;
	meta.ns = c->set->main.ns;
	meta.node = root;
	root->doc->kind = kind;
	root->doc->ns = meta.ns;
	k = load_find_kind(group, kind);
	if (k == NULL) {
		diag_error(c->d, kn, "unknown kind %s for apiVersion %s", kind, api);
		node_mark_used(root);
		return;
	}
	if (k->decode == NULL) {
		/* metadata first, so the message names the resource. */
		load_metadata(c, root, &meta);
		diag_error(c->d, root, "kind not implemented yet by meshgate");
		node_mark_used(root);
		return;
	}
	if (!load_metadata(c, root, &meta)) {
		node_mark_used(root);
		return;
	}
	if (!load_version_ok(k, version)) {
		if (k->versions == load_telemetry_versions)
			diag_error(c->d, av,
				   "apiVersion %s is not supported for %s: use %s/v1 or "
				   "%s/v1alpha1",
				   api, kind, group, group);
		else
			diag_error(c->d, av,
				   "apiVersion %s is not supported for %s: use %s/v1, %s/v1beta1 "
				   "or %s/v1alpha3",
				   api, kind, group, group, group);
		node_mark_used(root);
		return;
	}
	if (!load_check_dup(c, kind, meta.ns, meta.name, root)) {
		node_mark_used(root);
		return;
	}
	meta.order = c->set->order_counter++;
	/* status is written by controllers, never by the operator. */
	node_mark_used(node_get(root, "status"));
	spec = node_get(root, "spec");
	node_check_unknown(c->d, root);
	if (spec == NULL) {
		diag_error(c->d, root, "missing required field \"spec\"");
		return;
	}
	if (spec->type == NODE_NULL) {
		diag_error(c->d, spec, "expected a map, got null");
		return;
	}
	if (!node_want_map(c->d, spec))
		return;
	k->decode(c->p, c->d, c->set, &meta, spec);
}

/* Documents are decoded as they are parsed, and a VirtualService's tree is dropped right
 * after (its decoder leaves ghosts for the positions link may report at): the trees of a
 * large route table never all exist at once.  Other kinds keep theirs: link reads some of
 * their fields from the tree (tls, portLevelSettings). */
static void load_stream_doc(void *arg, struct node_doc *doc)
{
	struct load_ctx *c = arg;
	struct node *root = doc->root;
	struct node *kind = NULL;
	size_t i;

	if (root->type == NODE_MAP)
		for (i = 0; i < root->n && kind == NULL; i++)
			if (strcmp(root->keys[i]->str, "kind") == 0)
				kind = root->vals[i];
	if (kind == NULL || kind->type != NODE_SCALAR || strcmp(kind->str, "VirtualService") != 0)
		node_doc_keep(c->p, doc);
	load_document(c, doc->root);
}

static void load_file(struct load_ctx *c, const char *path)
{
	node_load_file_each(c->p, c->d, path, c->set->rebuild, load_stream_doc, c);
}

static int load_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool load_yaml_name(const char *name)
{
	size_t len = strlen(name);

	if (name[0] == '.')
		return false;
	return (len > 5 && strcmp(name + len - 5, ".yaml") == 0) ||
	       (len > 4 && strcmp(name + len - 4, ".yml") == 0);
}

/* A directory: its *.yaml and *.yml regular files, in lexical (byte) order, not recursive. */
static void load_dir(struct load_ctx *c, const char *dir, const struct node *at)
{
	const char **names = NULL;
	size_t n = 0, cap = 0, i;
	struct dirent *e;
	struct stat st;
	DIR *dp;

	if ((dp = opendir(dir)) == NULL) {
		diag_error(c->d, at, "cannot read directory %s: %s", dir, strerror(errno));
		return;
	}
	while ((e = readdir(dp)) != NULL) {
		const char *path;

		if (!load_yaml_name(e->d_name))
			continue;
		path = strcmp(dir, "/") == 0 ? pool_printf(c->p, "/%s", e->d_name)
					     : pool_printf(c->p, "%s/%s", dir, e->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;

			names = pool_grow(c->p, names, cap, ncap, sizeof(*names));
			cap = ncap;
		}
		names[n++] = path;
	}
	closedir(dp);
	if (n > 1)
		qsort(names, n, sizeof(*names), load_cmp);
	for (i = 0; i < n; i++)
		load_file(c, names[i]);
}

static void load_resource(struct load_ctx *c, const char *path, const struct node *at)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		diag_error(c->d, at, "cannot read %s: %s", path, strerror(errno));
		return;
	}
	if (S_ISDIR(st.st_mode))
		load_dir(c, path, at);
	else
		load_file(c, path);
}

void config_load_done(struct cfg_set *set)
{
	if (set != NULL)
		node_rebuild_release(set->rebuild);
}

struct cfg_set *config_load(struct pool *p, struct diag *d, const char *main_path)
{
	struct node_doc **docs = NULL;
	struct load_ctx *c;
	struct node *root = NULL, *res;
	struct cfg_set *set;
	size_t ndocs = 0, i, j;

	set = pool_alloc(p, sizeof(*set));
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		abort();
	c->p = p;
	c->d = d;
	c->set = set;
	set->rebuild = node_rebuild_new(p);

	node_load_file(p, d, main_path, &docs, &ndocs);
	if (ndocs > 1)
		diag_error(d, docs[1]->root, "the main config must be a single YAML document");
	if (ndocs > 0)
		root = docs[0]->root;
	cfg_main_decode(p, d, root, main_path, &set->main);

	res = node_get(root, "resources");
	for (i = 0, j = 0; i < set->main.resources.n; i++) {
		const struct node *at = res;

		/* Pair the resolved path with its entry for positions (same filter as mainconf). */
		for (; res != NULL && res->type == NODE_SEQ && j < res->n; j++) {
			if (cfg_resource_entry_ok(res->vals[j])) {
				at = res->vals[j++];
				break;
			}
		}
		load_resource(c, set->main.resources.v[i], at);
	}
	free(c->seen);
	free(c);
	return set;
}
