/* Stand-in for libFuzzer's main(): link it with any fuzz target to replay corpora with an
 * ordinary compiler (e.g. from `make check`).
 *
 *   replay [-flags ignored] PATH...
 *
 * Each PATH is a file or a directory (walked recursively, in sorted order); every regular
 * file is passed once to LLVMFuzzerTestOneInput in an exact-size heap buffer, so sanitizers
 * see reads past the end.  LLVMFuzzerInitialize is called first if the target defines it.
 * Exit status: 0 if every path could be read, 1 otherwise (crashes abort on their own). */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static unsigned long nrun;

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	size_t size = 0, cap = 0, n;

	if (f == NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	/* Read by growing a buffer (works for pipes and files being rewritten too), then
	 * hand the target an allocation of exactly the file's size. */
	for (;;) {
		if (size == cap) {
			uint8_t *nb;

			cap = cap ? cap * 2 : 4096;
			nb = realloc(buf, cap);
			if (nb == NULL) {
				fprintf(stderr, "replay: %s: out of memory\n", path);
				free(buf);
				fclose(f);
				return -1;
			}
			buf = nb;
		}
		n = fread(buf + size, 1, cap - size, f);
		size += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		fprintf(stderr, "replay: %s: read error\n", path);
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	{
		uint8_t *exact = malloc(size ? size : 1);

		if (exact == NULL) {
			free(buf);
			return -1;
		}
		memcpy(exact, buf, size);
		free(buf);
		LLVMFuzzerTestOneInput(exact, size);
		free(exact);
	}
	nrun++;
	return 0;
}

static int skip_entry(const struct dirent *d)
{
	return strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0;
}

static int run_path(const char *path)
{
	struct dirent **names;
	struct stat sb;
	int n, i, rc = 0;

	if (stat(path, &sb) != 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(sb.st_mode))
		return S_ISREG(sb.st_mode) ? run_file(path) : 0;
	n = scandir(path, &names, skip_entry, alphasort);
	if (n < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		size_t len = strlen(path) + strlen(names[i]->d_name) + 2;
		char *sub = malloc(len);

		if (sub == NULL) {
			rc = -1;
		} else {
			snprintf(sub, len, "%s/%s", path, names[i]->d_name);
			if (run_path(sub) != 0)
				rc = -1;
			free(sub);
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	int i, rc = 0;

	if (LLVMFuzzerInitialize != NULL)
		LLVMFuzzerInitialize(&argc, &argv);
	for (i = 1; i < argc; i++) {
		if (argv[i][0] == '-') /* libFuzzer-style options: accepted and ignored */
			continue;
		if (run_path(argv[i]) != 0)
			rc = 1;
	}
	printf("replay: %lu input(s) executed\n", nrun);
	return rc;
}
