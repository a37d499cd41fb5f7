/* The fuzz targets' invariant check: a failed one aborts, which libFuzzer reports as a crash
 * with the input that caused it. */
#ifndef MG_FUZZ_CHECK_H
#define MG_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__,       \
				#cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#endif
