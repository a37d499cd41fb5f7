#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control.h"
#include "log.h"
#include "memcache.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: meshgate [-c FILE] [-t] [-d] [-v]\n"
		     "  -c FILE  main configuration (default " MG_DEFAULT_CONFIG ")\n"
		     "  -t       check the configuration, print every problem, and exit\n"
		     "  -d       debug logging\n"
		     "  -v       print the version and exit\n");
}

int main(int argc, char **argv)
{
	const char *path = MG_DEFAULT_CONFIG;
	bool check = false;
	enum log_level level = LOG_LVL_INFO;
	int ch;

	memcache_install_libevent(); /* before libevent allocates anything */

	while ((ch = getopt(argc, argv, "c:tdvh")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 't':
			check = true;
			break;
		case 'd':
			level = LOG_LVL_DEBUG;
			break;
		case 'v':
			printf("meshgate %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init(level);
	if (check)
		return control_check(path);
	return control_run(path);
}
